//! The part of CBOR (RFC 8949) that WebAuthn speaks: definite lengths
//! only (CTAP2's canonical encoding), bounded depth and size, so a hostile
//! attestation object cannot make the reader allocate or recurse without end.

use std::fmt;

/// A decoded CBOR item.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cbor {
    /// An unsigned or negative integer.
    Int(i128),
    /// A byte string.
    Bytes(Vec<u8>),
    /// A text string.
    Text(String),
    /// An array.
    Array(Vec<Cbor>),
    /// A map, in the order given.
    Map(Vec<(Cbor, Cbor)>),
    /// `true` or `false`.
    Bool(bool),
    /// `null` or `undefined`.
    Null,
}

/// Why bytes are not the CBOR we accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CborError(&'static str);

impl fmt::Display for CborError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed CBOR: {}", self.0)
    }
}

impl std::error::Error for CborError {}

/// How deep items may nest (a COSE key inside an attestation object is 3).
const MAX_DEPTH: usize = 8;

impl Cbor {
    /// Reads one item from the front of `bytes`: it and how many bytes it took.
    pub(crate) fn decode_prefix(bytes: &[u8]) -> Result<(Cbor, usize), CborError> {
        let mut reader = Reader { bytes, at: 0 };
        let item = reader.item(0)?;
        Ok((item, reader.at))
    }

    /// Reads exactly one item spanning all of `bytes`.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Cbor, CborError> {
        let (item, used) = Self::decode_prefix(bytes)?;
        if used != bytes.len() {
            return Err(CborError("trailing bytes"));
        }
        Ok(item)
    }

    /// The value of a map's entry under `key`, if this is a map with one.
    pub(crate) fn get(&self, key: &Cbor) -> Option<&Cbor> {
        match self {
            Cbor::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The map entry under the text key `key`.
    pub(crate) fn field(&self, key: &str) -> Option<&Cbor> {
        self.get(&Cbor::Text(key.to_owned()))
    }

    /// The map entry under the integer key `key` (COSE's labels).
    pub(crate) fn label(&self, key: i128) -> Option<&Cbor> {
        self.get(&Cbor::Int(key))
    }

    pub(crate) fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Cbor::Bytes(b) => Some(b),
            _ => None,
        }
    }

    pub(crate) fn as_int(&self) -> Option<i128> {
        match self {
            Cbor::Int(n) => Some(*n),
            _ => None,
        }
    }

    pub(crate) fn as_text(&self) -> Option<&str> {
        match self {
            Cbor::Text(t) => Some(t),
            _ => None,
        }
    }

    /// Encodes the item (definite lengths, shortest heads): the software
    /// authenticator's, for tests.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out);
        out
    }

    #[cfg(any(test, feature = "testing"))]
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Cbor::Int(n) if *n >= 0 => head(out, 0, u64::try_from(*n).unwrap_or(u64::MAX)),
            Cbor::Int(n) => head(out, 1, u64::try_from(-1 - *n).unwrap_or(u64::MAX)),
            Cbor::Bytes(b) => {
                head(out, 2, b.len() as u64);
                out.extend_from_slice(b);
            }
            Cbor::Text(t) => {
                head(out, 3, t.len() as u64);
                out.extend_from_slice(t.as_bytes());
            }
            Cbor::Array(items) => {
                head(out, 4, items.len() as u64);
                items.iter().for_each(|i| i.write(out));
            }
            Cbor::Map(entries) => {
                head(out, 5, entries.len() as u64);
                for (k, v) in entries {
                    k.write(out);
                    v.write(out);
                }
            }
            Cbor::Bool(false) => out.push(0xf4),
            Cbor::Bool(true) => out.push(0xf5),
            Cbor::Null => out.push(0xf6),
        }
    }
}

#[cfg(any(test, feature = "testing"))]
fn head(out: &mut Vec<u8>, major: u8, n: u64) {
    let major = major << 5;
    match n {
        0..=23 => out.push(major | n as u8),
        24..=0xff => out.extend_from_slice(&[major | 24, n as u8]),
        0x100..=0xffff => {
            out.push(major | 25);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(major | 26);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
        _ => {
            out.push(major | 27);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], CborError> {
        let end = self.at.checked_add(n).filter(|end| *end <= self.bytes.len()).ok_or(CborError("truncated"))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    /// The argument of a head whose low five bits are `info`.
    fn argument(&mut self, info: u8) -> Result<u64, CborError> {
        Ok(match info {
            0..=23 => u64::from(info),
            24 => u64::from(self.take(1)?[0]),
            25 => u64::from(u16::from_be_bytes(self.take(2)?.try_into().map_err(|_| CborError("truncated"))?)),
            26 => u64::from(u32::from_be_bytes(self.take(4)?.try_into().map_err(|_| CborError("truncated"))?)),
            27 => u64::from_be_bytes(self.take(8)?.try_into().map_err(|_| CborError("truncated"))?),
            31 => return Err(CborError("indefinite lengths are not allowed")),
            _ => return Err(CborError("reserved additional information")),
        })
    }

    /// A length that must fit in what is left (so nothing is allocated for
    /// bytes that are not there).
    fn length(&mut self, info: u8, item_size: usize) -> Result<usize, CborError> {
        let n = usize::try_from(self.argument(info)?).map_err(|_| CborError("length too large"))?;
        let left = self.bytes.len() - self.at;
        if n.checked_mul(item_size).is_none_or(|needed| needed > left) {
            return Err(CborError("length beyond the input"));
        }
        Ok(n)
    }

    fn item(&mut self, depth: usize) -> Result<Cbor, CborError> {
        if depth > MAX_DEPTH {
            return Err(CborError("nested too deep"));
        }
        let initial = self.take(1)?[0];
        let (major, info) = (initial >> 5, initial & 0x1f);
        Ok(match major {
            0 => Cbor::Int(i128::from(self.argument(info)?)),
            1 => Cbor::Int(-1 - i128::from(self.argument(info)?)),
            2 => {
                let n = self.length(info, 1)?;
                Cbor::Bytes(self.take(n)?.to_vec())
            }
            3 => {
                let n = self.length(info, 1)?;
                let text = std::str::from_utf8(self.take(n)?).map_err(|_| CborError("text is not UTF-8"))?;
                Cbor::Text(text.to_owned())
            }
            4 => {
                let n = self.length(info, 1)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.item(depth + 1)?);
                }
                Cbor::Array(items)
            }
            5 => {
                let n = self.length(info, 2)?;
                let mut entries: Vec<(Cbor, Cbor)> = Vec::with_capacity(n);
                for _ in 0..n {
                    let key = self.item(depth + 1)?;
                    if entries.iter().any(|(k, _)| *k == key) {
                        return Err(CborError("a map key repeats"));
                    }
                    let value = self.item(depth + 1)?;
                    entries.push((key, value));
                }
                Cbor::Map(entries)
            }
            6 => return Err(CborError("tags are not used here")),
            _ => match info {
                20 => Cbor::Bool(false),
                21 => Cbor::Bool(true),
                22 | 23 => Cbor::Null,
                _ => return Err(CborError("floats and other simple values are not used here")),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_round_trip_and_report_their_length() {
        let item = Cbor::Map(vec![
            (Cbor::Int(1), Cbor::Int(2)),
            (Cbor::Int(-7), Cbor::Bytes(vec![0; 300])),
            (Cbor::Text("fmt".into()), Cbor::Text("none".into())),
            (Cbor::Int(3), Cbor::Array(vec![Cbor::Bool(true), Cbor::Null, Cbor::Int(70_000), Cbor::Int(-70_000)])),
        ]);
        let mut bytes = item.encode();
        assert_eq!(Cbor::decode(&bytes).unwrap(), item);
        let len = bytes.len();
        bytes.extend_from_slice(&[1, 2, 3]);
        assert_eq!(Cbor::decode_prefix(&bytes).unwrap(), (item, len));
        assert!(Cbor::decode(&bytes).is_err(), "trailing bytes");
    }

    #[test]
    fn hostile_input_is_refused_without_allocating() {
        for bad in [
            &[0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff][..], // 2^64 bytes
            &[0x9b, 0, 0, 0, 1, 0, 0, 0, 0],                             // 2^32 items
            &[0x5f, 0x41, 0, 0xff],                                      // indefinite
            &[0xa2, 0x01, 0x01, 0x01, 0x02],                             // repeated key
            &[0xf9, 0x3c, 0x00],                                         // a float
            &[0xc0, 0x00],                                               // a tag
            &[0x62, 0xff, 0xfe],                                         // not UTF-8
            &[0x43, 1, 2],                                               // truncated
            &[],
        ] {
            assert!(Cbor::decode(bad).is_err(), "{bad:?}");
        }
        let deep = [vec![0x81; 20], vec![0x00]].concat();
        assert!(Cbor::decode(&deep).is_err(), "nested too deep");
    }
}
