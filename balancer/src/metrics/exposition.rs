//! The Prometheus text exposition format, version 0.0.4, written by hand: a
//! `# HELP` and a `# TYPE` line once per family, then its samples, each
//! family in one group; label values and help texts escaped; every line,
//! the last one too, ends in a newline.
//!
//! Why by hand: the format is a few rules, and what the master exposes is a
//! snapshot of counters other processes keep, rendered on request. The
//! Prometheus organisation's `prometheus-client` crate is built for a
//! process instrumenting itself (a registry of metric objects it updates),
//! and it writes OpenMetrics text only (`# EOF`, `_total` added to counter
//! names), not 0.0.4; this file is all a collector needs.

use std::fmt::Write as _;

/// The `Content-Type` of a page in this format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A family's type, as its `# TYPE` line names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (and back to zero when its process restarts).
    Counter,
    /// Goes up and down.
    Gauge,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// A sample's value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    /// An integer (counts, bytes).
    Int(u64),
    /// A float (seconds); NaN and the infinities are written as the format says.
    Float(f64),
}

impl From<u64> for Value {
    fn from(value: u64) -> Value {
        Value::Int(value)
    }
}

impl From<u32> for Value {
    fn from(value: u32) -> Value {
        Value::Int(u64::from(value))
    }
}

impl From<usize> for Value {
    fn from(value: usize) -> Value {
        Value::Int(value as u64)
    }
}

impl From<bool> for Value {
    fn from(value: bool) -> Value {
        Value::Int(u64::from(value))
    }
}

impl From<f64> for Value {
    fn from(value: f64) -> Value {
        Value::Float(value)
    }
}

/// A page being written.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
    /// The family whose samples are being written.
    family: String,
}

impl Exposition {
    /// An empty page with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Exposition {
        Exposition { out: String::with_capacity(capacity), family: String::new() }
    }

    /// Starts a family: its help and type lines. Its samples follow, before
    /// the next family starts.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        debug_assert!(is_metric_name(name), "{name}");
        let _ = write!(self.out, "# HELP {name} ");
        for c in help.chars() {
            match c {
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                c => self.out.push(c),
            }
        }
        let _ = writeln!(self.out, "\n# TYPE {name} {}", kind.name());
        self.family.clear();
        self.family.push_str(name);
    }

    /// One sample of the family started last.
    pub fn sample(&mut self, labels: &[(&str, &str)], value: impl Into<Value>) {
        self.out.push_str(&self.family);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (name, value)) in labels.iter().enumerate() {
                debug_assert!(is_label_name(name), "{name}");
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{name}=\"");
                for c in value.chars() {
                    match c {
                        '\\' => self.out.push_str("\\\\"),
                        '"' => self.out.push_str("\\\""),
                        '\n' => self.out.push_str("\\n"),
                        c => self.out.push(c),
                    }
                }
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        match value.into() {
            Value::Int(n) => {
                let _ = write!(self.out, "{n}");
            }
            Value::Float(x) if x.is_nan() => self.out.push_str("NaN"),
            Value::Float(x) if x == f64::INFINITY => self.out.push_str("+Inf"),
            Value::Float(x) if x == f64::NEG_INFINITY => self.out.push_str("-Inf"),
            Value::Float(x) => {
                let _ = write!(self.out, "{x}");
            }
        }
        self.out.push('\n');
    }

    /// A family with a single sample and no labels.
    pub fn single(&mut self, name: &str, kind: Kind, help: &str, value: impl Into<Value>) {
        self.family(name, kind, help);
        self.sample(&[], value);
    }

    /// The page.
    pub fn finish(self) -> String {
        self.out
    }
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__` (reserved).
fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    !name.starts_with("__")
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_family_is_help_type_and_its_samples() {
        let mut page = Exposition::with_capacity(256);
        page.family("ringmaster_worker_requests_total", Kind::Counter, "Requests answered.");
        page.sample(&[("worker", "1"), ("cpu", "0")], 25u64);
        page.sample(&[("worker", "2"), ("cpu", "none")], 7u64);
        page.single("ringmaster_uptime_seconds", Kind::Gauge, "Seconds up.", 1.5);
        assert_eq!(
            page.finish(),
            "# HELP ringmaster_worker_requests_total Requests answered.\n\
             # TYPE ringmaster_worker_requests_total counter\n\
             ringmaster_worker_requests_total{worker=\"1\",cpu=\"0\"} 25\n\
             ringmaster_worker_requests_total{worker=\"2\",cpu=\"none\"} 7\n\
             # HELP ringmaster_uptime_seconds Seconds up.\n\
             # TYPE ringmaster_uptime_seconds gauge\n\
             ringmaster_uptime_seconds 1.5\n"
        );
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        let mut page = Exposition::default();
        page.family("x", Kind::Gauge, "a \\ b\nc \"quoted\"");
        page.sample(&[("v", "back\\slash \"quote\"\nnew")], 1u64);
        assert_eq!(
            page.finish(),
            "# HELP x a \\\\ b\\nc \"quoted\"\n# TYPE x gauge\nx{v=\"back\\\\slash \\\"quote\\\"\\nnew\"} 1\n"
        );
    }

    #[test]
    fn floats_as_the_format_spells_them() {
        let mut page = Exposition::default();
        page.family("f", Kind::Gauge, "h");
        for x in [0.25, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e21, 3.0] {
            page.sample(&[], x);
        }
        let text = page.finish();
        let values: Vec<&str> = text.lines().skip(2).map(|l| l.split(' ').nth(1).unwrap_or("")).collect();
        assert_eq!(values, ["0.25", "NaN", "+Inf", "-Inf", "1000000000000000000000", "3"]);
    }

    #[test]
    fn names() {
        assert!(is_metric_name("process_cpu_seconds_total") && is_metric_name("a:b") && !is_metric_name("1a"));
        assert!(!is_metric_name("") && !is_metric_name("a-b"));
        assert!(is_label_name("worker") && !is_label_name("__name__") && !is_label_name("a:b"));
    }
}
