//! Core's `MuHash3072` (`crypto/muhash.cpp`), for `gettxoutsetinfo
//! muhash`: each element is hashed with SHA-256, expanded with ChaCha20
//! (the hash as key, zero nonce) to a 3,072-bit number, and the set's
//! digest is the SHA-256 of the product of those numbers modulo the prime
//! 2^3072 - 1103717 (divided by the removed ones). Plain data, no thread:
//! called on the sync-manager thread while the UTXO set is walked.

use bitcoin::hashes::{sha256, Hash};

/// Limbs of a 3,072-bit number (64 bits each, little-endian).
const LIMBS: usize = 48;
/// 2^3072 minus the prime: Core's `MAX_PRIME_DIFF`.
const MAX_PRIME_DIFF: u64 = 1_103_717;

/// A number modulo the MuHash prime, always fully reduced.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Num3072([u64; LIMBS]);

impl Num3072 {
    fn one() -> Num3072 {
        let mut l = [0u64; LIMBS];
        l[0] = 1;
        Num3072(l)
    }

    fn from_bytes(b: &[u8; LIMBS * 8]) -> Num3072 {
        let mut l = [0u64; LIMBS];
        for (limb, chunk) in l.iter_mut().zip(b.chunks_exact(8)) {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            *limb = u64::from_le_bytes(w);
        }
        let mut n = Num3072(l);
        n.reduce_once();
        n
    }

    fn to_bytes(self) -> [u8; LIMBS * 8] {
        let mut b = [0u8; LIMBS * 8];
        for (chunk, limb) in b.chunks_exact_mut(8).zip(self.0) {
            chunk.copy_from_slice(&limb.to_le_bytes());
        }
        b
    }

    /// Whether the value is at least the prime (2^3072 - MAX_PRIME_DIFF):
    /// every limb but the lowest all ones, the lowest above the difference.
    fn is_overflow(&self) -> bool {
        self.0[0] > u64::MAX - MAX_PRIME_DIFF && self.0[1..].iter().all(|&l| l == u64::MAX)
    }

    /// Subtracts the prime once if the value is not below it (adding
    /// MAX_PRIME_DIFF and dropping the 2^3072 carry).
    fn reduce_once(&mut self) {
        if self.is_overflow() {
            let mut carry = MAX_PRIME_DIFF;
            for l in self.0.iter_mut() {
                let (v, c) = l.overflowing_add(carry);
                *l = v;
                carry = u64::from(c);
            }
        }
    }

    /// Adds `carry` at limb 0, returning the carry out of the top limb.
    fn add_small(&mut self, mut carry: u64) -> u64 {
        for l in self.0.iter_mut() {
            if carry == 0 {
                break;
            }
            let (v, c) = l.overflowing_add(carry);
            *l = v;
            carry = u64::from(c);
        }
        carry
    }

    fn mul(&self, other: &Num3072) -> Num3072 {
        let mut wide = [0u64; 2 * LIMBS];
        for (i, &a) in self.0.iter().enumerate() {
            let mut carry: u128 = 0;
            for (j, &b) in other.0.iter().enumerate() {
                let t = u128::from(a) * u128::from(b) + u128::from(wide[i + j]) + carry;
                wide[i + j] = t as u64;
                carry = t >> 64;
            }
            wide[i + LIMBS] = carry as u64;
        }
        // lo + hi * 2^3072 ≡ lo + hi * MAX_PRIME_DIFF (mod p).
        let mut out = [0u64; LIMBS];
        let mut carry: u128 = 0;
        for i in 0..LIMBS {
            let t = u128::from(wide[i])
                + u128::from(wide[i + LIMBS]) * u128::from(MAX_PRIME_DIFF)
                + carry;
            out[i] = t as u64;
            carry = t >> 64;
        }
        let mut n = Num3072(out);
        // The carry (< 2^22) is worth carry * MAX_PRIME_DIFF again; at most
        // one more wrap can follow.
        let mut top = carry as u64;
        while top != 0 {
            top = n.add_small(top * MAX_PRIME_DIFF);
        }
        n.reduce_once();
        n
    }

    /// The inverse, as `self^(p - 2)`.
    fn inverse(&self) -> Num3072 {
        // p - 2 = 2^3072 - (MAX_PRIME_DIFF + 2): limb 0 is
        // 2^64 - (MAX_PRIME_DIFF + 2), the others all ones.
        let mut exp = [u64::MAX; LIMBS];
        exp[0] = u64::MAX - (MAX_PRIME_DIFF + 1);
        let mut r = Num3072::one();
        for limb in exp.iter().rev() {
            for bit in (0..64).rev() {
                r = r.mul(&r);
                if (limb >> bit) & 1 == 1 {
                    r = r.mul(self);
                }
            }
        }
        r
    }
}

/// One ChaCha20 block (RFC 8439) with a zero nonce.
fn chacha20_block(key: &[u8; 32], counter: u32) -> [u8; 64] {
    let mut s = [0u32; 16];
    s[..4].copy_from_slice(&[0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574]);
    for (i, chunk) in key.chunks_exact(4).enumerate() {
        let mut w = [0u8; 4];
        w.copy_from_slice(chunk);
        s[4 + i] = u32::from_le_bytes(w);
    }
    s[12] = counter;
    let init = s;
    fn qr(s: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
        s[a] = s[a].wrapping_add(s[b]);
        s[d] = (s[d] ^ s[a]).rotate_left(16);
        s[c] = s[c].wrapping_add(s[d]);
        s[b] = (s[b] ^ s[c]).rotate_left(12);
        s[a] = s[a].wrapping_add(s[b]);
        s[d] = (s[d] ^ s[a]).rotate_left(8);
        s[c] = s[c].wrapping_add(s[d]);
        s[b] = (s[b] ^ s[c]).rotate_left(7);
    }
    for _ in 0..10 {
        qr(&mut s, 0, 4, 8, 12);
        qr(&mut s, 1, 5, 9, 13);
        qr(&mut s, 2, 6, 10, 14);
        qr(&mut s, 3, 7, 11, 15);
        qr(&mut s, 0, 5, 10, 15);
        qr(&mut s, 1, 6, 11, 12);
        qr(&mut s, 2, 7, 8, 13);
        qr(&mut s, 3, 4, 9, 14);
    }
    let mut out = [0u8; 64];
    for (i, chunk) in out.chunks_exact_mut(4).enumerate() {
        chunk.copy_from_slice(&s[i].wrapping_add(init[i]).to_le_bytes());
    }
    out
}

/// Core's `MuHash3072::ToNum3072`.
fn to_num3072(data: &[u8]) -> Num3072 {
    let key = sha256::Hash::hash(data).to_byte_array();
    let mut bytes = [0u8; LIMBS * 8];
    for (i, chunk) in bytes.chunks_exact_mut(64).enumerate() {
        chunk.copy_from_slice(&chacha20_block(&key, i as u32));
    }
    Num3072::from_bytes(&bytes)
}

/// A rolling set hash: insert and remove elements in any order.
#[derive(Clone)]
pub(super) struct MuHash3072 {
    numerator: Num3072,
    denominator: Num3072,
}

impl Default for MuHash3072 {
    fn default() -> Self {
        MuHash3072 {
            numerator: Num3072::one(),
            denominator: Num3072::one(),
        }
    }
}

impl MuHash3072 {
    /// Adds `data` to the set.
    pub(super) fn insert(&mut self, data: &[u8]) {
        self.numerator = self.numerator.mul(&to_num3072(data));
    }

    /// Removes `data` from the set (only the tests need it until a
    /// coinstats index keeps a rolling hash).
    #[cfg(test)]
    pub(super) fn remove(&mut self, data: &[u8]) {
        self.denominator = self.denominator.mul(&to_num3072(data));
    }

    /// Core's `Finalize`: SHA-256 of the 384-byte little-endian quotient,
    /// in Core's `uint256` byte order (shown reversed, like block hashes).
    pub(super) fn finalize(&self) -> [u8; 32] {
        let q = self.numerator.mul(&self.denominator.inverse());
        sha256::Hash::hash(&q.to_bytes()).to_byte_array()
    }
}

/// A `uint256` as Core prints it: the bytes reversed, in hex.
pub(super) fn uint256_hex(b: &[u8; 32]) -> String {
    b.iter().rev().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_int(i: u8) -> [u8; 32] {
        let mut b = [0u8; 32];
        b[0] = i;
        b
    }

    /// Core's `crypto_tests/muhash_tests` known value.
    #[test]
    fn cores_known_value() {
        let mut acc = MuHash3072::default();
        acc.insert(&from_int(0));
        acc.insert(&from_int(1));
        acc.remove(&from_int(2));
        assert_eq!(
            uint256_hex(&acc.finalize()),
            "10d312b100cbd32ada024a6646e40d3482fcff103668d2625f10002a607d5863"
        );
    }

    #[test]
    fn order_free_and_inverse() {
        let mut a = MuHash3072::default();
        a.insert(b"x");
        a.insert(b"y");
        let mut b = MuHash3072::default();
        b.insert(b"y");
        b.insert(b"x");
        assert_eq!(a.finalize(), b.finalize());
        b.remove(b"x");
        b.remove(b"y");
        assert_eq!(b.finalize(), MuHash3072::default().finalize());
        assert_ne!(a.finalize(), b.finalize());
    }

    /// RFC 8439 appendix A.1, test vector 1 (zero key, nonce and counter).
    #[test]
    fn chacha20_zero_key() {
        let b = chacha20_block(&[0u8; 32], 0);
        assert_eq!(b[..4], [0x76, 0xb8, 0xe0, 0xad]);
        assert_eq!(b[48..52], [0x6a, 0x43, 0xb8, 0xf4]);
        assert_eq!(b[60..], [0xb2, 0xee, 0x65, 0x86]);
    }
}
