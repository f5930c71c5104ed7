//! Tickets: a group handed to someone who should join it, as one line of text.
//!
//! `demls:` followed by base64url (no padding) of a [`Ticket`] protobuf: the group's id, its
//! name, and a member's signed invitation of the ticket's holder. The invitation is the
//! inviting member's YES on admitting the holder; its node checks it (signature, group,
//! holder, expiry) before asking to join.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use prost::Message as _;

/// What a ticket carries.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Ticket {
    /// The group's id (its topics and MLS group id derive from it).
    #[prost(string, tag = "1")]
    pub group_id: String,
    /// The group's name, as its creator chose it.
    #[prost(string, tag = "2")]
    pub name: String,
    /// A member's signed invitation (`demls.v1.Invitation`); empty for a group's address.
    #[prost(bytes = "vec", tag = "3")]
    pub invitation: Vec<u8>,
}

/// What starts every ticket.
pub const PREFIX: &str = "demls:";

/// The longest ticket text accepted (an invitation is a few hundred bytes).
const MAX_TEXT: usize = 4096;

/// Why a text is not a ticket.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TicketError {
    /// It does not start with `demls:`.
    #[error("a ticket starts with '{PREFIX}'")]
    Prefix,
    /// Too long to be one.
    #[error("a ticket is at most {MAX_TEXT} characters")]
    TooLong,
    /// Not base64url.
    #[error("the ticket is damaged (not base64url: {0})")]
    Encoding(String),
    /// Not a ticket's protobuf.
    #[error("the ticket is damaged ({0})")]
    Decoding(String),
}

impl Ticket {
    /// The ticket as text.
    pub fn to_text(&self) -> String {
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(self.encode_to_vec()))
    }

    /// Reads a ticket's text (surrounding whitespace is ignored).
    pub fn parse(text: &str) -> Result<Self, TicketError> {
        let text = text.trim();
        if text.len() > MAX_TEXT {
            return Err(TicketError::TooLong);
        }
        let body = text.strip_prefix(PREFIX).ok_or(TicketError::Prefix)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|e| TicketError::Encoding(e.to_string()))?;
        Self::decode(bytes.as_slice()).map_err(|e| TicketError::Decoding(e.to_string()))
    }

    /// Whether a user's argument is a ticket rather than a group's name.
    pub fn looks_like(text: &str) -> bool {
        text.trim_start().starts_with(PREFIX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_round_trip_and_bad_text_is_refused() {
        let ticket = Ticket {
            group_id: "lab".into(),
            name: "lab".into(),
            invitation: vec![1, 2, 3],
        };
        let text = ticket.to_text();
        assert!(Ticket::looks_like(&text));
        assert_eq!(Ticket::parse(&format!("  {text}\n")), Ok(ticket));
        assert_eq!(Ticket::parse("lab"), Err(TicketError::Prefix));
        assert!(matches!(
            Ticket::parse("demls:@@@"),
            Err(TicketError::Encoding(_))
        ));
        assert!(matches!(
            Ticket::parse("demls:_w"),
            Err(TicketError::Decoding(_))
        ));
        let long = format!("demls:{}", "A".repeat(MAX_TEXT));
        assert_eq!(Ticket::parse(&long), Err(TicketError::TooLong));
    }
}
