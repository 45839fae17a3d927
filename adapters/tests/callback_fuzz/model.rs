//! Mutable models of the two wire encodings providers use (JSON and
//! `application/x-www-form-urlencoded`), the mutations the fuzzer applies to signed samples,
//! and independent readers used by the per-provider signed views.

use proptest::prelude::*;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// One mutation: a kind and three selectors, resolved modulo the sizes of the model it is
/// applied to (so every generated value applies to every sample).
#[derive(Debug, Clone, Copy)]
pub struct Mutation {
    pub kind: u8,
    pub a: usize,
    pub b: usize,
    pub c: usize,
}

/// Structural mutations (interpreted by [`J::mutate`] and [`Form::mutate`]).
pub const STRUCTURAL_KINDS: u8 = 12;
/// Byte mutations of the rendered text (interpreted by [`mutate_bytes`]).
pub const BYTE_KINDS: u8 = 5;
/// Header mutations (interpreted by [`mutate_headers`]).
pub const HEADER_KINDS: u8 = 6;

pub fn mutation(kinds: u8) -> impl Strategy<Value = Mutation> {
    (0..kinds, any::<usize>(), any::<usize>(), any::<usize>())
        .prop_map(|(kind, a, b, c)| Mutation { kind, a, b, c })
}

/// A set of mutations for one case.
#[derive(Debug, Clone)]
pub struct Plan {
    pub structural: Vec<Mutation>,
    pub text: Vec<Mutation>,
    pub bytes: Vec<Mutation>,
    pub headers: Vec<Mutation>,
}

pub fn plan() -> impl Strategy<Value = Plan> {
    (
        prop::collection::vec(mutation(STRUCTURAL_KINDS), 0..4),
        prop::collection::vec(mutation(4), 0..3),
        prop::collection::vec(mutation(BYTE_KINDS), 0..2),
        prop::collection::vec(mutation(HEADER_KINDS), 0..2),
    )
        .prop_map(|(structural, text, bytes, headers)| Plan {
            structural,
            text,
            bytes,
            headers,
        })
}

// ---------------------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------------------

/// A JSON document whose keys and scalars keep their exact spelling.
#[derive(Debug, Clone, PartialEq)]
pub enum J {
    /// Entries as (raw key literal with quotes, value), in wire order, duplicates allowed.
    Obj(Vec<(String, J)>),
    Arr(Vec<J>),
    /// A string, rendered with minimal escaping.
    Str(String),
    /// Any literal, verbatim (numbers, `true`, `null`, or a re-encoded string).
    Raw(String),
}

pub fn obj(entries: Vec<(&str, J)>) -> J {
    J::Obj(entries.into_iter().map(|(k, v)| (lit(k), v)).collect())
}
pub fn s(text: &str) -> J {
    J::Str(text.to_string())
}
pub fn raw(text: &str) -> J {
    J::Raw(text.to_string())
}
pub fn lit(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}

impl J {
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.render_into(&mut out);
        out
    }
    fn render_into(&self, out: &mut String) {
        match self {
            J::Obj(entries) => {
                out.push('{');
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(k);
                    out.push(':');
                    v.render_into(out);
                }
                out.push('}');
            }
            J::Arr(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.render_into(out);
                }
                out.push(']');
            }
            J::Str(t) => out.push_str(&lit(t)),
            J::Raw(t) => out.push_str(t),
        }
    }

    /// Paths of every node (indices into object entries / array items), root first.
    fn paths(&self) -> Vec<Vec<usize>> {
        let mut out = vec![vec![]];
        let mut stack = vec![(vec![], self)];
        while let Some((path, node)) = stack.pop() {
            let children: Vec<&J> = match node {
                J::Obj(e) => e.iter().map(|(_, v)| v).collect(),
                J::Arr(a) => a.iter().collect(),
                _ => vec![],
            };
            for (i, c) in children.into_iter().enumerate() {
                let mut p: Vec<usize> = path.clone();
                p.push(i);
                out.push(p.clone());
                stack.push((p, c));
            }
        }
        out
    }

    fn at_mut(&mut self, path: &[usize]) -> &mut J {
        let mut node = self;
        for &i in path {
            node = match node {
                J::Obj(e) => &mut e[i].1,
                J::Arr(a) => &mut a[i],
                // Why: paths come from `paths()` of this very tree.
                _ => unreachable!("path into a scalar"),
            };
        }
        node
    }

    fn objects(&self) -> Vec<Vec<usize>> {
        let mut copy = self.clone();
        self.paths()
            .into_iter()
            .filter(|p| matches!(copy.at_mut(p), J::Obj(e) if !e.is_empty()))
            .collect()
    }

    /// Applies one structural mutation; returns a short label of what it did.
    pub fn mutate(&mut self, m: Mutation) -> &'static str {
        let objects = self.objects();
        let paths = self.paths();
        let node_path = paths[m.a % paths.len()].clone();
        let donor = {
            let p = &paths[m.c % paths.len()];
            self.clone().at_mut(p).clone()
        };
        let Some(obj_path) = (!objects.is_empty()).then(|| objects[m.a % objects.len()].clone())
        else {
            return "none";
        };
        let J::Obj(entries) = self.at_mut(&obj_path) else {
            return "none";
        };
        let n = entries.len();
        let (i, j) = (m.b % n, m.c % n);
        match m.kind {
            0 => {
                entries.swap(i, j);
                "reorder"
            }
            1 => {
                let e = entries[i].clone();
                entries.insert(j % (n + 1), e);
                "duplicate same"
            }
            2 => {
                let mut e = entries[i].clone();
                e.1 = changed(&e.1, m.c);
                entries.insert(m.a % (n + 1), e);
                "duplicate different"
            }
            3 => {
                entries.remove(i);
                "remove"
            }
            4 => {
                let k = entries[i].0.clone();
                entries[i].0 = reencode_str_literal(&decode_key(&k), m.c);
                "re-encode key"
            }
            5 => {
                let k = decode_key(&entries[i].0);
                entries[i].0 = lit(&change_text(&k, m.c));
                "change key"
            }
            6 => {
                // Join: move entry j's text into entry i behind a separator, empty entry j
                // (the separator-shift attack on signatures over joined values).
                let (Some(a), Some(b)) = (scalar_text(&entries[i].1), scalar_text(&entries[j].1))
                else {
                    return "none";
                };
                if i == j {
                    return "none";
                }
                let sep = [":", "|", "&", "."][m.a % 4];
                entries[i].1 = J::Str(format!("{a}{sep}{b}"));
                entries[j].1 = J::Str(String::new());
                "join values"
            }
            7 => {
                // Rename a key to one that sorts right next to it (values stay in order).
                let k = decode_key(&entries[i].0);
                let renamed = match m.c % 3 {
                    0 => format!("{k}_"),
                    1 => format!("{k}0"),
                    _ => {
                        let mut b = k.into_bytes();
                        if let Some(last) = b.last_mut() {
                            *last = last.saturating_sub(1).max(b'0');
                        }
                        String::from_utf8_lossy(&b).into_owned()
                    }
                };
                entries[i].0 = lit(&renamed);
                "rename key"
            }
            8 => {
                let node = self.at_mut(&node_path);
                *node = reencode_node(node, m.c);
                "re-encode value"
            }
            9 => {
                let node = self.at_mut(&node_path);
                *node = changed(node, m.c);
                "change value"
            }
            10 => {
                let node = self.at_mut(&node_path);
                *node = donor;
                "graft"
            }
            _ => {
                let node = self.at_mut(&node_path);
                *node = number_form(node, m.c);
                "number form"
            }
        }
    }
}

fn decode_key(raw_key: &str) -> String {
    serde_json::from_str(raw_key).unwrap_or_default()
}

fn scalar_text(j: &J) -> Option<String> {
    match j {
        J::Str(t) => Some(t.clone()),
        J::Raw(t) => match serde_json::from_str::<serde_json::Value>(t).ok()? {
            serde_json::Value::String(s) => Some(s),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        },
        _ => None,
    }
}

/// A different text (changed in one of several ways; never equal to `t`).
pub fn change_text(t: &str, sel: usize) -> String {
    let out = match sel % 7 {
        0 => format!("{t}1"),
        1 => t.chars().skip(1).collect(),
        2 => t.to_uppercase(),
        3 => t.to_lowercase(),
        4 => String::new(),
        5 => {
            let mut c: Vec<char> = t.chars().collect();
            if let Some(x) = c.get_mut(sel / 7 % t.len().max(1)) {
                *x = if *x == '9' { '8' } else { '9' };
            }
            c.into_iter().collect()
        }
        _ => format!(" {t}"),
    };
    if out == t {
        format!("{t}x")
    } else {
        out
    }
}

fn changed(j: &J, sel: usize) -> J {
    match j {
        J::Str(t) => J::Str(change_text(t, sel)),
        J::Raw(t) => match sel % 5 {
            0 => J::Raw("null".into()),
            1 => J::Raw("true".into()),
            2 => J::Raw("0".into()),
            3 => J::Raw(format!("{t}1")),
            _ => J::Str(t.clone()),
        },
        J::Obj(_) | J::Arr(_) => match sel % 4 {
            0 => J::Raw("null".into()),
            1 => J::Str("x".into()),
            2 => J::Raw("1".into()),
            _ => J::Arr(vec![j.clone()]),
        },
    }
}

/// The same value, spelled differently (string escapes only; never changes what it decodes to).
fn reencode_node(j: &J, sel: usize) -> J {
    match j {
        J::Str(t) => J::Raw(reencode_str_literal(t, sel)),
        other => other.clone(),
    }
}

/// A JSON string literal that decodes to `t`, with some characters escaped.
pub fn reencode_str_literal(t: &str, sel: usize) -> String {
    let mut out = String::from("\"");
    for (i, ch) in t.chars().enumerate() {
        let escape = match sel % 4 {
            0 => true,
            1 => i % 2 == 0,
            2 => i == sel / 4 % t.chars().count().max(1),
            _ => ch == '/',
        };
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' if escape => out.push_str("\\/"),
            c if escape || (c as u32) < 0x20 => {
                let mut buf = [0u16; 2];
                for u in c.encode_utf16(&mut buf) {
                    if sel % 3 == 0 {
                        out.push_str(&format!("\\u{u:04X}"));
                    } else {
                        out.push_str(&format!("\\u{u:04x}"));
                    }
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Another spelling of a number (`100` → `100.0`, `1e2`, `"100"`...) or of a digit string.
fn number_form(j: &J, sel: usize) -> J {
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    match j {
        J::Str(t) if digits(t) => J::Raw(t.clone()),
        J::Raw(t) if digits(t) => match sel % 8 {
            0 => J::Raw(format!("{t}.0")),
            1 => J::Raw(format!("{t}.00")),
            2 => J::Raw(format!("{t}e0")),
            3 => J::Raw(format!("{t}E+0")),
            4 => J::Raw(format!("0{t}")),
            5 => J::Raw(format!("-{t}")),
            6 => J::Str(t.clone()),
            _ => {
                // 100 → 1e2 (exact when it ends in zeros).
                let trimmed = t.trim_end_matches('0');
                if trimmed.is_empty() {
                    J::Raw("0e0".into())
                } else {
                    J::Raw(format!("{trimmed}e{}", t.len() - trimmed.len()))
                }
            }
        },
        other => other.clone(),
    }
}

/// Text-level JSON mutations that keep every value: whitespace between tokens, a BOM, a
/// trailing newline.
pub fn mutate_json_text(text: &str, m: Mutation) -> String {
    let boundaries: Vec<usize> = {
        let mut out = vec![0, text.len()];
        let mut in_str = false;
        let mut esc = false;
        for (i, b) in text.bytes().enumerate() {
            if in_str {
                match (esc, b) {
                    (true, _) => esc = false,
                    (false, b'\\') => esc = true,
                    (false, b'"') => {
                        in_str = false;
                        out.push(i + 1);
                    }
                    _ => {}
                }
            } else {
                match b {
                    b'"' => {
                        in_str = true;
                        out.push(i);
                    }
                    b'{' | b'[' | b',' | b':' => out.push(i + 1),
                    b'}' | b']' => out.push(i),
                    _ => {}
                }
            }
        }
        out
    };
    let at = boundaries[m.a % boundaries.len()];
    let ws = match m.kind {
        0 => " ",
        1 => "\n",
        2 => "\t\r\n  ",
        _ => "\u{feff}",
    };
    let mut out = text.to_string();
    out.insert_str(at, ws);
    out
}

// ---------------------------------------------------------------------------------------
// Forms
// ---------------------------------------------------------------------------------------

/// A form (or query string) as raw `key=value` pairs, each side as encoded on the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct Form {
    pub pairs: Vec<(String, String)>,
}

pub fn enc(t: &str) -> String {
    serde_urlencoded::to_string([("", t)])
        .map(|s| s[1..].to_string())
        .unwrap_or_default()
}

fn dec(t: &str) -> String {
    serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("k={t}"))
        .ok()
        .and_then(|v| v.into_iter().next())
        .map(|(_, v)| v)
        .unwrap_or_default()
}

/// `t` percent-encoded differently (same decoded text).
pub fn reencode_form(t: &str, sel: usize) -> String {
    let mut out = String::new();
    for (i, b) in t.bytes().enumerate() {
        let escape = match sel % 3 {
            0 => true,
            1 => i % 2 == 1,
            _ => i == sel / 3 % t.len().max(1),
        };
        match b {
            b' ' if sel % 2 == 0 => out.push('+'),
            b if escape || !(b.is_ascii_alphanumeric() || b"-._*".contains(&b)) => {
                if sel % 5 == 0 {
                    out.push_str(&format!("%{b:02x}"));
                } else {
                    out.push_str(&format!("%{b:02X}"));
                }
            }
            b => out.push(b as char),
        }
    }
    out
}

impl Form {
    pub fn new(pairs: &[(&str, &str)]) -> Form {
        Form {
            pairs: pairs.iter().map(|(k, v)| (enc(k), enc(v))).collect(),
        }
    }
    pub fn render(&self) -> String {
        self.pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    }
    pub fn mutate(&mut self, m: Mutation) -> &'static str {
        let n = self.pairs.len();
        if n == 0 {
            return "none";
        }
        let (i, j) = (m.b % n, m.c % n);
        match m.kind {
            0 => {
                self.pairs.swap(i, j);
                "reorder"
            }
            1 => {
                let p = self.pairs[i].clone();
                self.pairs.insert(m.c % (n + 1), p);
                "duplicate same"
            }
            2 => {
                let (k, v) = self.pairs[i].clone();
                let v = enc(&change_text(&dec(&v), m.c));
                self.pairs.insert(m.a % (n + 1), (k, v));
                "duplicate different"
            }
            3 => {
                self.pairs.remove(i);
                "remove"
            }
            4 => {
                let k = dec(&self.pairs[i].0);
                self.pairs[i].0 = reencode_form(&k, m.c);
                "re-encode key"
            }
            5 => {
                let k = dec(&self.pairs[i].0);
                self.pairs[i].0 = enc(&change_text(&k, m.c));
                "change key"
            }
            6 => {
                if i == j {
                    return "none";
                }
                let (a, b) = (dec(&self.pairs[i].1), dec(&self.pairs[j].1));
                let kb = dec(&self.pairs[j].0);
                let joined = match m.a % 4 {
                    0 => format!("{a}:{b}"),
                    1 => format!("{a}|{b}"),
                    2 => format!("{a}&{kb}={b}"),
                    _ => format!("{a}.{b}"),
                };
                self.pairs[i].1 = enc(&joined);
                if m.a % 4 == 2 {
                    self.pairs.remove(j);
                } else {
                    self.pairs[j].1 = String::new();
                }
                "join values"
            }
            7 => {
                let k = dec(&self.pairs[i].0);
                let renamed = match m.c % 2 {
                    0 => format!("{k}_"),
                    _ => format!("{k}0"),
                };
                self.pairs[i].0 = enc(&renamed);
                "rename key"
            }
            8 => {
                let v = dec(&self.pairs[i].1);
                self.pairs[i].1 = reencode_form(&v, m.c);
                "re-encode value"
            }
            9 => {
                let v = dec(&self.pairs[i].1);
                self.pairs[i].1 = enc(&change_text(&v, m.c));
                "change value"
            }
            10 => {
                // Raw separators: an empty pair, a pair without `=`.
                let extra = ["", "flag", "=", "&"][m.c % 4].to_string();
                self.pairs.insert(m.a % (n + 1), (extra, String::new()));
                "odd separator"
            }
            _ => {
                // Swap the value of two pairs (a key/value assignment change).
                let v = self.pairs[i].1.clone();
                self.pairs[i].1 = self.pairs[j].1.clone();
                self.pairs[j].1 = v;
                "swap values"
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Bytes and headers
// ---------------------------------------------------------------------------------------

/// Cut, flip a bit, insert, delete or duplicate a byte.
pub fn mutate_bytes(bytes: &mut Vec<u8>, m: Mutation) -> &'static str {
    let n = bytes.len();
    match m.kind {
        0 => {
            bytes.truncate(m.a % (n + 1));
            "cut"
        }
        1 if n > 0 => {
            bytes[m.a % n] ^= 1 << (m.b % 8);
            "flip"
        }
        2 => {
            bytes.insert(m.a % (n + 1), (m.b % 256) as u8);
            "insert byte"
        }
        3 if n > 0 => {
            bytes.remove(m.a % n);
            "delete byte"
        }
        _ if n > 0 => {
            let b = bytes[m.a % n];
            bytes.insert(m.a % n, b);
            "double byte"
        }
        _ => "none",
    }
}

/// Header mutations: remove one, alter its value, change its name's or value's case,
/// duplicate it (before or after, same or other value), add an unrelated one.
pub fn mutate_headers(headers: &mut Vec<(String, String)>, m: Mutation) -> &'static str {
    let n = headers.len();
    if n == 0 {
        headers.push(("x-fuzz".into(), "1".into()));
        return "add";
    }
    let i = m.a % n;
    match m.kind {
        0 => {
            headers.remove(i);
            "remove header"
        }
        1 => {
            let v = headers[i].1.clone();
            headers[i].1 = change_text(&v, m.b);
            "alter header"
        }
        2 => {
            headers[i].0 = headers[i].0.to_uppercase();
            "header name case"
        }
        3 => {
            let v = &headers[i].1;
            headers[i].1 = if m.b % 2 == 0 {
                v.to_uppercase()
            } else {
                v.to_lowercase()
            };
            "header value case"
        }
        4 => {
            let (k, v) = headers[i].clone();
            let v = if m.b % 2 == 0 {
                v
            } else {
                change_text(&v, m.c)
            };
            headers.insert(m.c % (n + 1), (k, v));
            "duplicate header"
        }
        _ => {
            headers.insert(m.b % (n + 1), ("x-unrelated".into(), "value".into()));
            "unrelated header"
        }
    }
}

// ---------------------------------------------------------------------------------------
// An order-preserving reader (for the Paykassma signed view)
// ---------------------------------------------------------------------------------------

/// A JSON value with object keys in wire order and duplicates kept; numbers by kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Ordered {
    Null,
    Bool(bool),
    U(u64),
    I(i64),
    F(u64),
    S(String),
    A(Vec<Ordered>),
    O(Vec<(String, Ordered)>),
}

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("JSON")
            }
            fn visit_unit<E>(self) -> Result<Ordered, E> {
                Ok(Ordered::Null)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Ordered, E> {
                Ok(Ordered::Bool(b))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Ordered, E> {
                Ok(Ordered::U(n))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Ordered, E> {
                Ok(Ordered::I(n))
            }
            fn visit_f64<E>(self, n: f64) -> Result<Ordered, E> {
                Ok(Ordered::F(n.to_bits()))
            }
            fn visit_str<E>(self, t: &str) -> Result<Ordered, E> {
                Ok(Ordered::S(t.to_string()))
            }
            fn visit_string<E>(self, t: String) -> Result<Ordered, E> {
                Ok(Ordered::S(t))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Ordered, A::Error> {
                let mut out = vec![];
                while let Some(v) = a.next_element()? {
                    out.push(v);
                }
                Ok(Ordered::A(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Ordered, A::Error> {
                let mut out = vec![];
                while let Some((k, v)) = a.next_entry::<String, Ordered>()? {
                    out.push((k, v));
                }
                Ok(Ordered::O(out))
            }
        }
        d.deserialize_any(V)
    }
}

impl Ordered {
    /// The first entry named `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Ordered> {
        match self {
            Ordered::O(e) => e.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}
