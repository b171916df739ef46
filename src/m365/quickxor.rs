//! QuickXorHash, the content hash OneDrive for Business and SharePoint report in
//! `file.hashes.quickXorHash` (graph-protocol.md §4.2), computed incrementally so a download can
//! be checked as it streams, whatever its size. Written from Microsoft's description of the
//! algorithm (learn.microsoft.com, "Code snippets: QuickXorHash"); it shares nothing with the
//! simulator's own implementation. It must never buffer the data it hashes.
//!
//! Byte `i` of the input is XORed into a 160-bit block rotated left by `(i * 11) mod 160` bits,
//! and the input length (64-bit little-endian) is XORed into the block's last eight bytes. The
//! rotation repeats every 160 bytes and XOR is linear, so bytes whose positions agree modulo 160
//! can be XORed together first and rotated once at the end: hashing is one XOR per byte.

use base64::Engine;

/// Bytes after which the rotation pattern repeats: 160 bits / gcd(11, 160) = 160 positions.
const PERIOD: usize = 160;
const SHIFT_BITS: usize = 11;
const BLOCK_BYTES: usize = 20;

/// An incremental QuickXorHash. Feed it with [`update`](Self::update) in chunks of any size.
#[derive(Clone)]
pub struct QuickXorHasher {
    /// `lanes[k]`: the XOR of every byte whose position is `k` modulo 160.
    lanes: [u8; PERIOD],
    /// Position modulo 160 of the next byte.
    position: usize,
    length: u64,
}

impl Default for QuickXorHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for QuickXorHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuickXorHasher")
            .field("length", &self.length)
            .finish_non_exhaustive()
    }
}

impl QuickXorHasher {
    pub fn new() -> Self {
        Self {
            lanes: [0; PERIOD],
            position: 0,
            length: 0,
        }
    }

    /// Adds the next bytes of the content.
    pub fn update(&mut self, mut data: &[u8]) {
        self.length = self.length.wrapping_add(data.len() as u64);
        // Finish the current lap of 160 positions, then XOR whole laps at once.
        while !data.is_empty() {
            let room = PERIOD - self.position;
            let take = room.min(data.len());
            for (lane, byte) in self.lanes[self.position..self.position + take]
                .iter_mut()
                .zip(&data[..take])
            {
                *lane ^= byte;
            }
            self.position = (self.position + take) % PERIOD;
            data = &data[take..];
        }
    }

    /// How many bytes were hashed so far.
    pub fn len(&self) -> u64 {
        self.length
    }

    pub fn is_empty(&self) -> bool {
        self.length == 0
    }

    /// The 20-byte digest of everything fed so far (the hasher can keep going afterwards).
    pub fn digest(&self) -> [u8; BLOCK_BYTES] {
        let mut block = [0u8; BLOCK_BYTES];
        for (k, &lane) in self.lanes.iter().enumerate() {
            if lane == 0 {
                continue;
            }
            // Bit `b` of the block lives in byte b / 8 at bit b % 8 (the C# code's cells are
            // little-endian), so a byte rotated by `bits` straddles at most two bytes.
            let bits = (k * SHIFT_BITS) % (PERIOD);
            let (index, offset) = (bits / 8, bits % 8);
            let wide = u16::from(lane) << offset;
            block[index] ^= wide as u8;
            block[(index + 1) % BLOCK_BYTES] ^= (wide >> 8) as u8;
        }
        for (slot, byte) in block[BLOCK_BYTES - 8..]
            .iter_mut()
            .zip(self.length.to_le_bytes())
        {
            *slot ^= byte;
        }
        block
    }

    /// The digest as Graph spells it: base64 of the 20 bytes.
    pub fn base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.digest())
    }
}

/// The QuickXorHash of `data`, base64 as in `file.hashes.quickXorHash`.
pub fn quick_xor_hash(data: &[u8]) -> String {
    let mut hasher = QuickXorHasher::new();
    hasher.update(data);
    hasher.base64()
}

/// Whether two base64 hashes name the same digest. Graph has been seen to vary the padding.
pub fn same_quick_xor_hash(a: &str, b: &str) -> bool {
    let decode = |s: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(s.trim()))
            .ok()
    };
    match (decode(a), decode(b)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(text: &str) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(text.replace('\n', ""))
            .unwrap()
    }

    /// Microsoft publishes the algorithm and a C# reference, but no test vectors. These come
    /// from two independent implementations: rclone's `backend/onedrive/quickxorhash` tests
    /// (base64 input → hash; lengths 1, 16, 222, 256 and 333 cross the 160-byte wrap) and the
    /// C library `flowerysong/quickxorhash` (its `foo.txt` test, `"foo\n"`, and its README's
    /// `"hello world"`).
    const VECTORS: &[(&str, &str)] = &[
        ("", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        ("Sg==", "SgAAAAAAAAAAAAAAAQAAAAAAAAA="),
        ("2fuxhBJXtpWFe8dOfdGeHw==", "O9tHLAghgSvYohKFyMMxnNCHaHg="),
        (
            "PfxMcUd0vIW6VbHG/uj/Y0W6qEoKmyBD0nYebEKazKaKG+UaDqBEcmQjbfQeVnVLuodMoPp7P7TR
1htX5n2VnkHh22xDyoJ8C/ZQKiSNqQfXvh83judf4RVr9exJCud8Uvgip6aVZTaPrJHVjQhMCp/d
EnGvqg0oN5OVkM2qqAXvA0teKUDhgNM71sDBVBCGXxNOR2bpbD1iM4dnuT0ey4L+loXEHTL0fqMe
UcEi2asgImnlNakwenDzz0x57aBwyq3AspCFGB1ncX4yYCr/OaCcS5OKi/00WH+wNQU3",
            "QX/YEpG0gDsmhEpCdWhsxDzsfVE=",
        ),
        (
            "qwGf2ESubE5jOUHHyc94ORczFYYbc2OmEzo+hBIyzJiNwAzC8PvJqtTzwkWkSslgHFGWQZR2BV5+
uYTrYT7HVwRM40vqfj0dBgeDENyTenIOL1LHkjtDKoXEnQ0mXAHoJ8PjbNC93zi5TovVRXTNzfGE
s5dpWVqxUzb5lc7dwkyvOluBw482mQ4xrzYyIY1t+//OrNi1ObGXuUw2jBQOFfJVj2Y6BOyYmfB1
y36eBxi3zxeG5d5NYjm2GSh6e08QMAwu3zrINcqIzLOuNIiGXBtl7DjKt7b5wqi4oFiRpZsCyx2s
mhSrdrtK/CkdU6nDN+34vSR/M8rZpWQdBE7a8g==",
            "WYT9JY3JIo/pEBp+tIM6Gt2nyTM=",
        ),
        (
            "w0LGhqU1WXFbdavqDE4kAjEzWLGGzmTNikzqnsiXHx2KRReKVTxkv27u3UcEz9+lbMvYl4xFf2Z4
aE1xRBBNd1Ke5C0zToSaYw5o4B/7X99nKK2/XaUX1byLow2aju2XJl2OpKpJg+tSJ2fmjIJTkfuY
Uz574dFX6/VXxSxwGH/xQEAKS5TCsBK3CwnuG1p5SAsQq3gGVozDWyjEBcWDMdy8/AIFrj/y03Lf
c/RNRCQTAfZbnf2QwV7sluw4fH3XJr07UoD0YqN+7XZzidtrwqMY26fpLZnyZjnBEt1FAZWO7RnK
G5asg8xRk9YaDdedXdQSJAOy6bWEWlABj+tVAigBxavaluUH8LOj+yfCFldJjNLdi90fVHkUD/m4
Mr5OtmupNMXPwuG3EQlqWUVpQoYpUYKLsk7a5Mvg6UFkiH596y5IbJEVCI1Kb3D1",
            "e3+wo77iKcILiZegnzyUNcjCdoQ=",
        ),
        ("Zm9vCg==", "ZnjDGxQAAAAAAAAABAAAAAAAAAA="),
        ("aGVsbG8gd29ybGQ=", "aCgDG9jwBhDc4Q1yawMZAAAAAAA="),
    ];

    #[test]
    fn matches_published_vectors() {
        for (input, expected) in VECTORS {
            assert_eq!(quick_xor_hash(&decode(input)), *expected, "input {input}");
        }
    }

    #[test]
    fn chunking_does_not_change_the_hash() {
        for (input, expected) in VECTORS {
            let data = decode(input);
            for chunk in [1, 7, 159, 160, 161, 1000] {
                let mut hasher = QuickXorHasher::new();
                for piece in data.chunks(chunk) {
                    hasher.update(piece);
                }
                assert_eq!(hasher.base64(), *expected, "chunk {chunk}");
                assert_eq!(hasher.len(), data.len() as u64);
            }
        }
    }

    #[test]
    fn padding_variants_compare_equal() {
        assert!(same_quick_xor_hash(
            "aCgDG9jwBhDc4Q1yawMZAAAAAAA=",
            "aCgDG9jwBhDc4Q1yawMZAAAAAAA"
        ));
        assert!(!same_quick_xor_hash(
            "aCgDG9jwBhDc4Q1yawMZAAAAAAA=",
            "ZnjDGxQAAAAAAAAABAAAAAAAAAA="
        ));
        assert!(!same_quick_xor_hash("not base64!", "not base64!"));
    }
}
