//! The two text formats `/metrics` speaks, and the choice between them by
//! the scraper's `Accept` header.
//!
//! Prometheus text 0.0.4 stays the default (what every scraper, `curl` and
//! the existing dashboards read). OpenMetrics 1.0 is answered to a scraper
//! that asks for it, because only it carries exemplars: the same page, with
//! the trace-id exemplars on the duration buckets, counter families named
//! without their `_total` suffix (which their samples keep), and `# EOF`.

use std::collections::HashSet;

/// A text format of `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Prometheus text exposition 0.0.4: no exemplars.
    #[default]
    Prometheus,
    /// OpenMetrics 1.0 text, with exemplars.
    OpenMetrics,
}

const OPENMETRICS: &str = "application/openmetrics-text";

impl Format {
    /// The format for a request with these `Accept` header values:
    /// OpenMetrics when a range names `application/openmetrics-text` (any
    /// `version`) with a quality at least that of any plain-text or wildcard
    /// range; Prometheus text otherwise, so a scraper that prefers
    /// `text/plain` gets it, and so does a request with no `Accept`.
    /// Malformed ranges are passed over.
    pub fn negotiate<'a>(accept: impl IntoIterator<Item = &'a str>) -> Format {
        let (mut openmetrics, mut text) = (0.0f32, 0.0f32);
        for range in accept.into_iter().flat_map(|v| v.split(',')) {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let mut q = Some(1.0f32);
            for p in parts {
                if let Some((k, v)) = p.split_once('=') {
                    if k.trim().eq_ignore_ascii_case("q") {
                        q = v.trim().parse().ok().filter(|q| (0.0..=1.0).contains(q));
                    }
                }
            }
            let Some(q) = q else { continue };
            match media.as_str() {
                OPENMETRICS => openmetrics = openmetrics.max(q),
                "text/plain" | "text/*" | "*/*" => text = text.max(q),
                _ => {}
            }
        }
        if openmetrics > 0.0 && openmetrics >= text {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }

    /// The `Content-Type` of a page in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// Whether pages in this format carry exemplars.
    pub fn exemplars(self) -> bool {
        self == Format::OpenMetrics
    }

    /// Finishes a page rendered as Prometheus text (with exemplars when
    /// [`Format::exemplars`]) in this format. For OpenMetrics, a counter
    /// family `x_total` is named `x` in its `# HELP` and `# TYPE` (its
    /// samples stay `x_total`, as the spec wants), and `# EOF` ends the
    /// page. Done on the whole page so that every part that writes
    /// counters (the core's, the fan-outs') is covered without knowing of
    /// formats.
    pub fn finish(self, page: String) -> String {
        if self == Format::Prometheus {
            return page;
        }
        let counters: HashSet<&str> = page
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
            .collect();
        let mut out = String::with_capacity(page.len() + 8);
        for line in page.lines() {
            let renamed = ["# HELP ", "# TYPE "].into_iter().find_map(|prefix| {
                let (name, rest) = line.strip_prefix(prefix)?.split_once(' ')?;
                let family = name.strip_suffix("_total")?;
                counters.contains(name).then_some((prefix, family, rest))
            });
            match renamed {
                Some((prefix, family, rest)) => {
                    out.push_str(prefix);
                    out.push_str(family);
                    out.push(' ');
                    out.push_str(rest);
                }
                None => out.push_str(line),
            }
            out.push('\n');
        }
        out.push_str("# EOF\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn negotiate(accept: &str) -> Format {
        Format::negotiate([accept])
    }

    #[test]
    fn openmetrics_only_when_asked_for_and_not_ranked_below_text() {
        assert_eq!(Format::negotiate([]), Format::Prometheus);
        assert_eq!(negotiate("*/*"), Format::Prometheus);
        assert_eq!(negotiate("text/plain"), Format::Prometheus);
        assert_eq!(
            negotiate("application/openmetrics-text"),
            Format::OpenMetrics
        );
        assert_eq!(
            negotiate("application/openmetrics-text; version=0.0.1"),
            Format::OpenMetrics
        );
        assert_eq!(
            negotiate("Application/OpenMetrics-Text;version=1.0.0;charset=utf-8"),
            Format::OpenMetrics
        );
        // What Prometheus sends by default.
        assert_eq!(
            negotiate(
                "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,\
                 application/openmetrics-text;version=0.0.1;q=0.4,\
                 text/plain;version=0.0.4;q=0.2,*/*;q=0.1"
            ),
            Format::OpenMetrics
        );
        // A scraper that prefers the plain text gets it.
        assert_eq!(
            negotiate("text/plain;version=0.0.4;q=0.5,application/openmetrics-text;q=0.4"),
            Format::Prometheus
        );
        assert_eq!(
            negotiate("application/openmetrics-text;q=0"),
            Format::Prometheus
        );
        assert_eq!(
            negotiate("application/openmetrics-text;q=nonsense"),
            Format::Prometheus
        );
        // Several Accept headers count together.
        assert_eq!(
            Format::negotiate(["text/plain;q=0.1", "application/openmetrics-text"]),
            Format::OpenMetrics
        );
    }

    #[test]
    fn openmetrics_names_counter_families_without_total_and_ends_with_eof() {
        let page = "# HELP a_total Things.\n# TYPE a_total counter\na_total{x=\"1\"} 2\n\
                    # HELP g_total A gauge named so.\n# TYPE g_total gauge\ng_total 1\n"
            .to_owned();
        assert_eq!(Format::Prometheus.finish(page.clone()), page);
        assert_eq!(
            Format::OpenMetrics.finish(page),
            "# HELP a Things.\n# TYPE a counter\na_total{x=\"1\"} 2\n\
             # HELP g_total A gauge named so.\n# TYPE g_total gauge\ng_total 1\n# EOF\n"
        );
    }
}
