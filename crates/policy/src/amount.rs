//! [`U256`]: on-chain amounts (wei, token units, token ids) without a big-integer library.

use std::fmt;
use std::str::FromStr;

/// Why a decimal amount could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// The text is empty or is not `DIGITS` or `DIGITS.DIGITS`.
    #[error("{0:?} is not a decimal amount (expected e.g. `12` or `0.5`)")]
    Syntax(String),
    /// More fractional digits than the unit has decimals.
    #[error("{text:?} has more than {decimals} decimal places")]
    TooPrecise {
        /// The text given.
        text: String,
        /// The unit's number of decimals.
        decimals: u8,
    },
    /// The amount does not fit in 256 bits.
    #[error("{0:?} does not fit in 256 bits")]
    Overflow(String),
}

/// An unsigned 256-bit integer (a Solidity `uint256`), stored as 32 big-endian bytes.
///
/// Ordering is numeric. Displayed in decimal; [`U256::format_units`] and
/// [`U256::parse_units`] convert to and from human amounts such as `0.1` ETH.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct U256([u8; 32]);

impl U256 {
    /// Zero.
    pub const ZERO: Self = Self([0; 32]);
    /// One.
    pub const ONE: Self = Self::from_u128(1);

    /// Wraps 32 big-endian bytes.
    pub const fn from_be_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 big-endian bytes.
    pub const fn to_be_bytes(self) -> [u8; 32] {
        self.0
    }

    /// Reads at most 32 big-endian bytes (shorter input is zero-extended on the left).
    pub fn from_be_slice(bytes: &[u8]) -> Option<Self> {
        let start = 32usize.checked_sub(bytes.len())?;
        let mut out = [0u8; 32];
        out[start..].copy_from_slice(bytes);
        Some(Self(out))
    }

    /// The big-endian bytes without leading zero bytes (empty for zero).
    pub fn to_minimal_be(&self) -> Vec<u8> {
        let first = self.0.iter().position(|&b| b != 0).unwrap_or(32);
        self.0[first..].to_vec()
    }

    /// A `u128` as a `U256`.
    pub const fn from_u128(value: u128) -> Self {
        let low = value.to_be_bytes();
        let mut out = [0u8; 32];
        let mut i = 0;
        while i < 16 {
            out[16 + i] = low[i];
            i += 1;
        }
        Self(out)
    }

    /// Whether this is zero.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 32]
    }

    /// Reads a human amount in a unit with `decimals` decimal places: `parse_units("0.1", 18)`
    /// is 10^17 (0.1 ETH in wei). Exact: more fractional digits than `decimals` is an error,
    /// never a rounding.
    pub fn parse_units(text: &str, decimals: u8) -> Result<Self, AmountError> {
        let syntax = || AmountError::Syntax(text.to_owned());
        let (whole, fraction) = match text.split_once('.') {
            Some((whole, fraction)) if !fraction.is_empty() => (whole, fraction),
            Some(_) => return Err(syntax()),
            None => (text, ""),
        };
        if whole.is_empty()
            || !whole
                .bytes()
                .chain(fraction.bytes())
                .all(|b| b.is_ascii_digit())
        {
            return Err(syntax());
        }
        if fraction.len() > usize::from(decimals) {
            return Err(AmountError::TooPrecise {
                text: text.to_owned(),
                decimals,
            });
        }
        let padding = usize::from(decimals) - fraction.len();
        let digits = whole
            .bytes()
            .chain(fraction.bytes())
            .map(|b| b - b'0')
            .chain(std::iter::repeat_n(0, padding));
        let mut value = Self::ZERO;
        for digit in digits {
            if !value.mul10_add(digit) {
                return Err(AmountError::Overflow(text.to_owned()));
            }
        }
        Ok(value)
    }

    /// This amount in a unit with `decimals` decimal places, without trailing zeros:
    /// 5·10^16 wei with 18 decimals is `0.05`, 10^18 is `1`.
    pub fn format_units(&self, decimals: u8) -> String {
        let digits = self.to_string();
        let decimals = usize::from(decimals);
        if decimals == 0 {
            return digits;
        }
        let padded = format!("{digits:0>width$}", width = decimals + 1);
        let (whole, fraction) = padded.split_at(padded.len() - decimals);
        let fraction = fraction.trim_end_matches('0');
        if fraction.is_empty() {
            whole.to_owned()
        } else {
            format!("{whole}.{fraction}")
        }
    }

    /// `self = self * 10 + digit`; false on overflow (then `self` is garbage).
    fn mul10_add(&mut self, digit: u8) -> bool {
        let mut carry = u16::from(digit);
        for byte in self.0.iter_mut().rev() {
            let t = u16::from(*byte) * 10 + carry;
            *byte = (t & 0xff) as u8;
            carry = t >> 8;
        }
        carry == 0
    }

    /// `self = self / 10`, returning the remainder.
    fn div10(&mut self) -> u8 {
        let mut rem = 0u16;
        for byte in self.0.iter_mut() {
            let cur = (rem << 8) | u16::from(*byte);
            *byte = (cur / 10) as u8;
            rem = cur % 10;
        }
        rem as u8
    }
}

impl From<u128> for U256 {
    fn from(value: u128) -> Self {
        Self::from_u128(value)
    }
}

impl fmt::Display for U256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            return f.write_str("0");
        }
        let mut rest = *self;
        let mut digits = Vec::with_capacity(78);
        while !rest.is_zero() {
            digits.push(b'0' + rest.div10());
        }
        digits.reverse();
        f.write_str(&String::from_utf8_lossy(&digits))
    }
}

impl fmt::Debug for U256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "U256({self})")
    }
}

impl FromStr for U256 {
    type Err = AmountError;

    /// A decimal integer.
    fn from_str(text: &str) -> Result<Self, AmountError> {
        Self::parse_units(text, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ETH: u128 = 1_000_000_000_000_000_000;

    #[test]
    fn parses_and_formats_human_amounts() {
        assert_eq!(U256::parse_units("0.1", 18), Ok(U256::from(ETH / 10)));
        assert_eq!(U256::parse_units("12", 18), Ok(U256::from(12 * ETH)));
        assert_eq!(
            U256::parse_units("1.000000000000000001", 18),
            Ok(U256::from(ETH + 1))
        );
        assert_eq!(U256::from(ETH / 20).format_units(18), "0.05");
        assert_eq!(U256::from(ETH).format_units(18), "1");
        assert_eq!(U256::from(ETH + 1).format_units(18), "1.000000000000000001");
        assert_eq!(U256::ZERO.format_units(18), "0");
        assert_eq!(U256::from(1234).format_units(0), "1234");
        assert_eq!(U256::from(1234).format_units(2), "12.34");
        assert_eq!(U256::from(5).format_units(3), "0.005");
    }

    #[test]
    fn refuses_what_is_not_an_exact_amount() {
        for bad in [
            "", ".", ".5", "5.", "1.2.3", "-1", "+1", "1e18", " 1", "0x10", "١",
        ] {
            assert_eq!(
                U256::parse_units(bad, 18),
                Err(AmountError::Syntax(bad.into())),
                "{bad:?}"
            );
        }
        assert!(matches!(
            U256::parse_units("0.0000001", 6),
            Err(AmountError::TooPrecise { decimals: 6, .. })
        ));
        assert!(matches!(
            U256::parse_units("1.5", 0),
            Err(AmountError::TooPrecise { .. })
        ));
    }

    #[test]
    fn the_whole_256_bit_range_and_no_more() {
        let max = "115792089237316195423570985008687907853269984665640564039457584007913129639935";
        let parsed: U256 = max.parse().expect("max fits");
        assert_eq!(parsed, U256::from_be_bytes([0xff; 32]));
        assert_eq!(parsed.to_string(), max);
        let over = "115792089237316195423570985008687907853269984665640564039457584007913129639936";
        assert_eq!(
            over.parse::<U256>(),
            Err(AmountError::Overflow(over.into()))
        );
        assert!(matches!(
            U256::parse_units("1", 78),
            Err(AmountError::Overflow(_))
        ));
        assert_eq!(
            U256::parse_units("1", 77).map(|v| v.to_string().len()),
            Ok(78)
        );
    }

    #[test]
    fn byte_conversions_and_order() {
        assert_eq!(U256::from_be_slice(&[1, 0]), Some(U256::from(256)));
        assert_eq!(U256::from_be_slice(&[]), Some(U256::ZERO));
        assert_eq!(U256::from_be_slice(&[0; 33]), None);
        assert_eq!(U256::from(256).to_minimal_be(), vec![1, 0]);
        assert!(U256::ZERO.to_minimal_be().is_empty());
        assert!(U256::from(256) > U256::from(255));
        assert!(U256::from_be_bytes([0xff; 32]) > U256::from(u128::MAX));
        assert_eq!(format!("{:?}", U256::ONE), "U256(1)");
    }
}
