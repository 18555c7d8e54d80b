//! Binary encoding of everything stored in RocksDB (postcard: compact, no JSON on the hot path).

use std::io;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Encodes a value with postcard.
///
/// # Errors
/// Fails only if the value cannot be serialized (never for Raftka's own types).
pub fn encode<T: Serialize + ?Sized>(value: &T) -> io::Result<Vec<u8>> {
    postcard::to_stdvec(value).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Decodes a postcard value.
///
/// # Errors
/// `InvalidData` when the bytes are not a valid encoding of `T` (corruption or a format change).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> io::Result<T> {
    postcard::from_bytes(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Command, Record, RecordBatch, ValueKind};
    use bytes::Bytes;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn produce_command_round_trips(
            ts in any::<i64>(),
            key in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..32)),
            value in proptest::collection::vec(any::<u8>(), 0..256),
            hk in "[a-z]{0,8}",
        ) {
            let cmd = Command::Produce(RecordBatch { records: vec![Record {
                timestamp_ms: ts,
                key: key.map(Bytes::from),
                value: Bytes::from(value),
                value_kind: ValueKind::Binary,
                headers: vec![(hk, Bytes::from_static(b"v"))],
            }], producer: None, idempotency_key: Some("k".into()) });
            let bytes = encode(&cmd).unwrap();
            prop_assert_eq!(decode::<Command>(&bytes).unwrap(), cmd);
        }
    }

    #[test]
    fn garbage_is_invalid_data_not_a_panic() {
        let err = decode::<Command>(&[0xff, 0xff, 0xff]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
