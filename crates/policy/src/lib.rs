//! Admission policies for demls groups.
