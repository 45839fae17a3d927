//! Random identifiers in the shapes the providers use (randomness from UUID v4).

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

fn random_bytes(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 16);
    while out.len() < n {
        out.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    out.truncate(n);
    out
}

/// `n` letters and digits.
pub(crate) fn alnum(n: usize) -> String {
    random_bytes(n)
        .into_iter()
        .map(|b| ALNUM[b as usize % ALNUM.len()] as char)
        .collect()
}

/// `n` decimal digits, the first one not zero.
pub(crate) fn digits(n: usize) -> String {
    random_bytes(n)
        .into_iter()
        .enumerate()
        .map(|(i, b)| {
            if i == 0 {
                (b'1' + b % 9) as char
            } else {
                (b'0' + b % 10) as char
            }
        })
        .collect()
}

/// `n` lowercase hex digits (a MongoDB ObjectId is 24).
pub(crate) fn hex(n: usize) -> String {
    let mut s = hex::encode(random_bytes(n.div_ceil(2)));
    s.truncate(n);
    s
}

/// A new UUID v4 as text.
pub(crate) fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}
