//! Fieldless enums whose variants are metric labels: each gets `ALL` (every variant, in
//! declaration order), `as_str` (a stable snake_case label), `Display`, and a crate-internal
//! `index` into per-variant counter arrays.

macro_rules! labelled_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $label:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every variant, in a fixed order (handy for exporting metrics).
            pub const ALL: [$name; [$($label),+].len()] = [$($name::$variant),+];

            /// A stable snake_case label, e.g. for a Prometheus `reason` label.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $label, )+
                }
            }

            /// The position of `self` in [`Self::ALL`].
            pub(crate) fn index(self) -> usize {
                self as usize
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub(crate) use labelled_enum;

#[cfg(test)]
mod tests {
    labelled_enum! {
        /// A test enum.
        pub enum Sample {
            /// First.
            A => "a",
            /// Second.
            B => "b_label",
        }
    }

    #[test]
    fn all_labels_and_indices_agree() {
        assert_eq!(Sample::ALL, [Sample::A, Sample::B]);
        for (i, s) in Sample::ALL.iter().enumerate() {
            assert_eq!(s.index(), i);
        }
        assert_eq!(Sample::B.to_string(), "b_label");
    }
}
