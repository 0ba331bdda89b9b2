//! Where a client is in its inboxes: the last number seen in each, in the order of
//! [`crate::api::inboxes`]. Written as the numbers joined by dots (`12` for a buyer, `12.3` for a
//! seller's person and seller inboxes); it is the SSE event id and the `after` of long polling.

use shared::error::ApiError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor(pub Vec<u64>);

impl Cursor {
    /// Parses a cursor for `inboxes` inboxes; missing positions are 0 (nothing seen).
    pub fn parse(text: &str, inboxes: usize, field: &str) -> Result<Cursor, ApiError> {
        let invalid = || ApiError::invalid_field(field, "a cursor from an earlier answer, such as 12 or 12.3");
        let mut seqs =
            text.trim().split('.').map(|p| p.parse::<u64>().map_err(|_| invalid())).collect::<Result<Vec<_>, _>>()?;
        if seqs.len() > inboxes {
            return Err(invalid());
        }
        seqs.resize(inboxes, 0);
        Ok(Cursor(seqs))
    }

    pub fn render(&self) -> String {
        self.0.iter().map(u64::to_string).collect::<Vec<_>>().join(".")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_pads() {
        assert_eq!(Cursor::parse("12.3", 2, "after").unwrap(), Cursor(vec![12, 3]));
        assert_eq!(Cursor::parse("7", 2, "after").unwrap(), Cursor(vec![7, 0]));
        assert_eq!(Cursor(vec![12, 3]).render(), "12.3");
        for bad in ["", "x", "1.2.3", "-1"] {
            assert_eq!(Cursor::parse(bad, 2, "after").unwrap_err().details["field"], "after", "{bad:?}");
        }
    }
}
