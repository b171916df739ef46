//! QuickXorHash, the only hash OneDrive for Business and SharePoint put in `file.hashes`
//! (graph-protocol.md §4.2). Written from Microsoft's description, not shared with the client.

use base64::Engine;

const WIDTH_BITS: usize = 160;
const SHIFT: usize = 11;

/// base64 of the 20-byte QuickXorHash of `data`.
pub fn quick_xor_hash(data: &[u8]) -> String {
    finish(xor_block(data), data.len() as u64)
}

/// The 160-bit XOR block of `data` as if it started at offset 0, before the length is mixed
/// in. Byte i is XORed into the block rotated left by (i * 11) mod 160 bits. The rotation
/// repeats every 160 bytes, so the blocks of pieces whose offsets are multiples of 160 combine
/// by plain XOR: that is how a file of many gigabytes is hashed from a few distinct pieces.
pub fn xor_block(data: &[u8]) -> [u8; 20] {
    let mut block = [0u8; 20];
    // Work per bit offset: byte at bit offset `o` touches bits o..o+8 (wrapping at 160).
    let mut shift = 0usize;
    for &byte in data {
        let byte_index = shift / 8;
        let bit = shift % 8;
        let value = (byte as u16) << bit;
        block[byte_index] ^= (value & 0xFF) as u8;
        let high = (value >> 8) as u8;
        if high != 0 {
            block[(byte_index + 1) % 20] ^= high;
        }
        shift = (shift + SHIFT) % WIDTH_BITS;
    }
    block
}

/// XORs `other` into `block`.
pub fn combine(block: &mut [u8; 20], other: &[u8; 20]) {
    for (a, b) in block.iter_mut().zip(other) {
        *a ^= b;
    }
}

/// Mixes the total length into the block's last 8 bytes and encodes it.
pub fn finish(mut block: [u8; 20], length: u64) -> String {
    for (k, byte) in length.to_le_bytes().iter().enumerate() {
        block[20 - 8 + k] ^= byte;
    }
    base64::engine::general_purpose::STANDARD.encode(block)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_input_is_all_zero() {
        assert_eq!(quick_xor_hash(b""), "AAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    }

    /// Vectors from rclone's `quickxorhash` tests (checked there against Microsoft's C# code).
    #[test]
    fn matches_published_vectors() {
        let vectors = [
            ("Sg==", "SgAAAAAAAAAAAAAAAQAAAAAAAAA="),
            ("tbQ=", "taAFAAAAAAAAAAAAAgAAAAAAAAA="),
            ("0pZP", "0rDEEwAAAAAAAAAAAwAAAAAAAAA="),
            ("2fuxhBJXtpWFe8dOfdGeHw==", "O9tHLAghgSvYohKFyMMxnNCHaHg="),
            (
                "T6LYJIfDh81JrAK309H2JMJTXis=",
                "zBTHrspn3mEcohlJdIUAbjGNaNg=",
            ),
            (
                "NbYXsp5/K6mR+NmHwExjvWeWDJFnXTKWVlzYHoesp2E=",
                "wjuAuWDiq04qDt1R8hHWDDcwVoQ=",
            ),
            (
                "4SVmjtXIL8BB8SfkbR5Cpaljm2jpyUfAhIBf65XmKxHlz9dy5XixgiE/q1lv+esZW/E=",
                "wxZ0rxkMQEnRNAp8ZgEZLT4RdLM=",
            ),
        ];
        for (input, expected) in vectors {
            let data = base64::engine::general_purpose::STANDARD
                .decode(input)
                .unwrap_or_default();
            assert_eq!(quick_xor_hash(&data), expected, "input {input}");
        }
    }

    #[test]
    fn pieces_at_multiples_of_160_combine_by_xor() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        let mut block = xor_block(&data[..320]);
        combine(&mut block, &xor_block(&data[320..]));
        assert_eq!(finish(block, 1000), quick_xor_hash(&data));
    }

    #[test]
    fn single_byte_lands_in_first_byte_and_length_in_tail() {
        let hash = base64::engine::general_purpose::STANDARD
            .decode(quick_xor_hash(b"A"))
            .unwrap_or_default();
        assert_eq!(hash[0], b'A');
        assert_eq!(hash[12], 1);
    }
}
