//! Static API keys, stored hashed: the file holds `NAME sha256:HEX` lines
//! (the SHA-256 of each key), so reading it gives no key away. Keys are
//! long random strings, for which a plain SHA-256 is as good as a slow
//! password hash: there is nothing to guess from a dictionary.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use ring::digest::{digest, SHA256};

/// The loaded key file.
#[derive(Debug)]
pub struct ApiKeys {
    by_hash: HashMap<[u8; 32], Arc<str>>,
}

impl ApiKeys {
    /// Reads a key file; the error is one line naming the file and line.
    pub fn load(path: &Path) -> Result<ApiKeys, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--api-keys {}: {e}", path.display()))?;
        ApiKeys::parse(&text).map_err(|e| format!("--api-keys {}: {e}", path.display()))
    }

    /// Parses `NAME sha256:HEX` lines; blank lines and `#` comments are skipped.
    pub fn parse(text: &str) -> Result<ApiKeys, String> {
        let mut by_hash = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: &str| format!("line {}: {why}", n + 1);
            let (name, hash) = line
                .split_once(char::is_whitespace)
                .ok_or_else(|| bad("expected NAME sha256:HEX"))?;
            let hex = hash
                .trim()
                .strip_prefix("sha256:")
                .ok_or_else(|| bad("the hash must start with sha256:"))?;
            let digest = parse_hex(hex).ok_or_else(|| bad("sha256: takes 64 hex digits"))?;
            if name.chars().any(|c| c.is_control()) || name.len() > 128 {
                return Err(bad("the name must be at most 128 printable characters"));
            }
            if by_hash.insert(digest, Arc::from(name)).is_some() {
                return Err(bad("this key is listed twice"));
            }
        }
        if by_hash.is_empty() {
            return Err("no keys in the file".into());
        }
        Ok(ApiKeys { by_hash })
    }

    /// The name of the key `key`, if it is one.
    pub fn name(&self, key: &str) -> Option<&Arc<str>> {
        let d = digest(&SHA256, key.as_bytes());
        let d: [u8; 32] = d.as_ref().try_into().ok()?;
        self.by_hash.get(&d)
    }
}

/// The `sha256:HEX` form of `key`, as the key file stores it.
pub fn hash_line(key: &str) -> String {
    let d = digest(&SHA256, key.as_bytes());
    let mut s = String::from("sha256:");
    for b in d.as_ref() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn parse_hex(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_by_hash_only() {
        let file = format!(
            "# ops keys\nci-bot {}\n\ndashboard {}\n",
            hash_line("tc_secret_1"),
            hash_line("tc_secret_2")
        );
        let keys = ApiKeys::parse(&file).unwrap();
        assert_eq!(keys.name("tc_secret_1").map(|n| &**n), Some("ci-bot"));
        assert_eq!(keys.name("tc_secret_2").map(|n| &**n), Some("dashboard"));
        assert!(keys.name("tc_secret_3").is_none());
        assert!(!file.contains("tc_secret"));
    }

    #[test]
    fn the_documented_hash() {
        // printf %s abc | sha256sum
        assert_eq!(
            hash_line("abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn bad_lines_are_named() {
        for (bad, why) in [
            ("ci", "line 1: expected"),
            ("ci abc", "sha256:"),
            ("ci sha256:12", "64 hex"),
            ("", "no keys"),
        ] {
            let e = ApiKeys::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        let twice = format!("a {}\nb {}", hash_line("k"), hash_line("k"));
        assert!(ApiKeys::parse(&twice).unwrap_err().contains("line 2"));
    }
}
