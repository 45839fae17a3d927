//! Matching: what a user's permissions allow, with NATS wildcard semantics (for
//! `paystate check`).

use super::*;

fn tokens(s: &str) -> Vec<&str> {
    s.split('.').collect()
}

/// Whether `pattern` (with `*` and `>` wildcards) matches every subject `required` matches
/// (`required` may itself hold wildcards): the NATS subset relation.
pub fn covers(pattern: &str, required: &str) -> bool {
    let (p, r) = (tokens(pattern), tokens(required));
    for (i, pt) in p.iter().enumerate() {
        if *pt == ">" {
            return r.len() > i;
        }
        let Some(rt) = r.get(i) else {
            return false;
        };
        match (*pt, *rt) {
            (_, ">") => return false,
            ("*", _) => {}
            (_, "*") => return false,
            (a, b) if a == b => {}
            _ => return false,
        }
    }
    p.len() == r.len()
}

/// Whether some subject matches both `a` and `b`.
pub fn intersects(a: &str, b: &str) -> bool {
    let (a, b) = (tokens(a), tokens(b));
    let mut i = 0;
    loop {
        match (a.get(i), b.get(i)) {
            (Some(&">"), Some(_)) | (Some(_), Some(&">")) => return true,
            (Some(x), Some(y)) => {
                if *x != "*" && *y != "*" && x != y {
                    return false;
                }
            }
            (None, None) => return true,
            _ => return false,
        }
        i += 1;
    }
}

/// Why `required` is not (fully) permitted by `rules`, if it is not. No allow list means
/// everything is allowed (NATS semantics).
pub fn missing(rules: Option<&Rules>, required: &str) -> Option<String> {
    let rules = rules?;
    let allowed = rules.allow.is_empty() || rules.allow.iter().any(|a| covers(a, required));
    if !allowed {
        return Some("not in the allow list".into());
    }
    rules
        .deny
        .iter()
        .find(|d| intersects(d, required))
        .map(|d| format!("denied by {d:?}"))
}

/// Every subject the role must be allowed to publish / subscribe to (its allow lists),
/// minus what its own deny list takes back (those are meant to be partial).
pub fn required(role: Role) -> (BTreeSet<String>, BTreeSet<String>) {
    let p = role.permissions();
    (
        p.publish.allow.into_iter().collect(),
        p.subscribe.allow.into_iter().collect(),
    )
}
