//! `--targets`: a comma list of device ids, ranges (`pump-{1..100}`) and
//! globs (`demo-*`, resolved through the gateway's ListDevices, online
//! devices only).

use thingcall_client::Client;
use thingcall_proto::wire::validate_id;

use super::Setup;

/// Most ids one range may expand to, so a typo cannot exhaust memory.
pub const MAX_RANGE: u64 = 1_000_000;

/// One item of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A device id (ranges are already expanded into these).
    Id(String),
    /// A pattern with `*` or `?`, for the gateway to resolve.
    Glob(String),
}

/// Splits and expands the list, with no I/O. Empty items are skipped; an
/// empty list is an error.
pub fn parse(list: &str) -> Result<Vec<Item>, String> {
    let mut items = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if part.contains(['*', '?']) {
            items.push(Item::Glob(part.to_owned()));
        } else {
            for id in expand_range(part)? {
                validate_id("target", &id).map_err(|e| format!("--targets: {e}"))?;
                items.push(Item::Id(id));
            }
        }
    }
    if items.is_empty() {
        return Err("--targets is empty".to_owned());
    }
    Ok(items)
}

/// `prefix{A..B}suffix` to prefixA .. prefixB with the suffix; `A` with
/// leading zeros pads every number to its width (`{01..10}`). Anything
/// without `{` is returned as it is.
pub fn expand_range(item: &str) -> Result<Vec<String>, String> {
    let Some(open) = item.find('{') else {
        return Ok(vec![item.to_owned()]);
    };
    let bad = || format!("--targets: {item:?}: expected prefix{{A..B}} with numbers A <= B");
    let close = open + item[open..].find('}').ok_or_else(bad)?;
    let (prefix, range, suffix) = (&item[..open], &item[open + 1..close], &item[close + 1..]);
    let (a, b) = range.split_once("..").ok_or_else(bad)?;
    let (lo, hi): (u64, u64) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
    if lo > hi {
        return Err(bad());
    }
    if hi - lo >= MAX_RANGE {
        return Err(format!(
            "--targets: {item:?} expands to more than {MAX_RANGE} ids"
        ));
    }
    let width = if a.len() > 1 && a.starts_with('0') {
        a.len()
    } else {
        0
    };
    Ok((lo..=hi)
        .map(|n| format!("{prefix}{n:0width$}{suffix}"))
        .collect())
}

/// The device ids to call, in list order without duplicates. Globs ask the
/// gateway at `server`; an unreachable gateway is [`Setup::Unreachable`],
/// a list that names no online device a usage error.
pub async fn resolve(list: &str, server: &str) -> Result<Vec<String>, Setup> {
    let items = parse(list).map_err(Setup::Usage)?;
    let mut client = None;
    let mut ids: Vec<String> = Vec::new();
    for item in items {
        match item {
            Item::Id(id) => ids.push(id),
            Item::Glob(pattern) => {
                if client.is_none() {
                    client = Some(Client::connect(server).await.map_err(Setup::from_call)?);
                }
                let devices = client
                    .as_mut()
                    .expect("connected above")
                    .list_devices(&pattern)
                    .await
                    .map_err(Setup::from_call)?;
                let before = ids.len();
                ids.extend(devices.into_iter().filter(|d| d.online).map(|d| d.id));
                if ids.len() == before {
                    return Err(Setup::Usage(format!(
                        "--targets: no online device matches {pattern:?} on {server}"
                    )));
                }
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    ids.retain(|id| seen.insert(id.clone()));
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &str) -> Vec<String> {
        parse(list)
            .unwrap()
            .into_iter()
            .map(|i| match i {
                Item::Id(id) => id,
                Item::Glob(g) => format!("glob:{g}"),
            })
            .collect()
    }

    #[test]
    fn lists_ranges_and_globs() {
        assert_eq!(ids("demo-1,demo-2"), ["demo-1", "demo-2"]);
        assert_eq!(ids(" a , ,b "), ["a", "b"]);
        assert_eq!(ids("pump-{1..3}"), ["pump-1", "pump-2", "pump-3"]);
        assert_eq!(ids("p{8..10}x"), ["p8x", "p9x", "p10x"]);
        assert_eq!(ids("d{01..03}"), ["d01", "d02", "d03"]);
        assert_eq!(ids("x,demo-*,s?"), ["x", "glob:demo-*", "glob:s?"]);
        assert_eq!(ids("{5..5}"), ["5"]);
    }

    #[test]
    fn bad_lists() {
        for bad in [
            "",
            " , ",
            "p{3..1}",
            "p{1..x}",
            "p{1-3}",
            "p{1..3",
            "a/b",
            "p{0..1000000}",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn ids_alone_need_no_gateway() {
        let got = resolve("b,a,b", "http://127.0.0.1:1").await.unwrap();
        assert_eq!(got, ["b", "a"]);
        match resolve("demo-*", "http://127.0.0.1:1").await {
            Err(Setup::Unreachable(_)) => {}
            other => panic!("{other:?}"),
        }
    }
}
