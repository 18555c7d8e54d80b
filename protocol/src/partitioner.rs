//! Kafka's default partitioner, `toPositive(murmur2(key)) % partitions`, bit for bit the same as
//! Kafka's `Utils.murmur2`. The server and the client's `Producer` both call this one, so a key
//! lands in the same partition whoever picks it, and where a Kafka producer would put it.

/// Kafka's murmur2 (32-bit, seed `0x9747b28c`), as a signed 32-bit int like Kafka's Java.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = SEED ^ (data.len() as u32);
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for c in chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    // Kafka's switch falls through from case 3 to case 1; the bytes are read unsigned.
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if let Some(&b) = tail.first() {
        h ^= u32::from(b);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Kafka's `Utils.toPositive`: clears the sign bit (it is not `abs`).
pub fn to_positive(n: i32) -> u32 {
    (n & 0x7fff_ffff) as u32
}

/// The partition Kafka's default partitioner picks for `key` among `partitions` partitions
/// (`partitions` of 0 is treated as 1).
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    to_positive(murmur2(key)) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka_test_vectors() {
        // From Kafka's UtilsTest.testMurmur2 (clients/src/test/.../UtilsTest.java).
        let cases: [(&str, i32); 6] = [
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            ("abc", 479_470_107),
        ];
        for (input, want) in cases {
            assert_eq!(murmur2(input.as_bytes()), want, "murmur2({input:?})");
        }
    }

    #[test]
    fn to_positive_clears_the_sign_bit_instead_of_negating() {
        assert_eq!(to_positive(-1), 0x7fff_ffff);
        assert_eq!(to_positive(i32::MIN), 0);
        assert_eq!(to_positive(5), 5);
    }

    #[test]
    fn keys_land_where_the_api_docs_say() {
        // docs/api.md: with 3 partitions, alice -> 0, dave -> 1, carol -> 2.
        assert_eq!(partition_for_key(b"alice", 3), 0);
        assert_eq!(partition_for_key(b"dave", 3), 1);
        assert_eq!(partition_for_key(b"carol", 3), 2);
    }

    #[test]
    fn partition_is_stable_and_in_range() {
        for p in 1..20u32 {
            let a = partition_for_key(b"user-1", p);
            assert!(a < p);
            assert_eq!(a, partition_for_key(b"user-1", p));
        }
    }

    #[test]
    fn zero_partitions_does_not_divide_by_zero() {
        assert_eq!(partition_for_key(b"x", 0), 0);
    }
}
