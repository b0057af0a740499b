//! `ringmaster ctl PATH status --table` and `top`: the `status` line as a
//! table for people, aligned and boxed as `pm2 list` draws one. Free of
//! I/O: it turns the parsed line into text.

use super::json::Json;

/// The columns, and whether each is a number (aligned right).
const COLUMNS: [(&str, bool); 10] = [
    ("id", true),
    ("pid", true),
    ("cpu", true),
    ("state", false),
    ("uptime", true),
    ("restarts", true),
    ("live", true),
    ("requests", true),
    ("req/s", true),
    ("memory", true),
];

/// The table for a `status` reply: a summary line, then one row per worker.
pub fn render(status: &Json) -> Result<String, String> {
    let workers = status.get("workers").and_then(Json::as_array).ok_or("the status line has no workers")?;
    let text = |v: Option<&Json>| v.and_then(Json::as_str).unwrap_or("?").to_string();
    let number = |v: Option<&Json>| v.and_then(Json::as_u64).map_or_else(|| "-".to_string(), |n| n.to_string());
    let rows: Vec<[String; 10]> = workers
        .iter()
        .map(|w| {
            let state = text(w.get("state"));
            let lame = w.get("lame_duck") == Some(&Json::Bool(true));
            let running = state != "exited";
            [
                number(w.get("id")),
                number(w.get("pid")),
                number(w.get("cpu")),
                if lame && state == "ready" { "lame duck".to_string() } else { state },
                if running { duration(w.get("uptime_ms").and_then(Json::as_u64).unwrap_or(0)) } else { "-".into() },
                number(w.get("restarts")),
                number(w.get("live")),
                number(w.get("requests")),
                w.get("req_per_s").and_then(Json::as_f64).map_or_else(|| "-".to_string(), |r| format!("{r:.1}")),
                w.get("rss_bytes").and_then(Json::as_u64).map_or_else(|| "-".to_string(), bytes),
            ]
        })
        .collect();
    let mut widths: Vec<usize> = COLUMNS.iter().map(|(name, _)| name.chars().count()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    // `reuseport` says how the kernel's choice is steered: "reuseport (load)".
    let mode = match status.get("steer").and_then(Json::as_str) {
        Some(steer) => format!("{} ({steer})", text(status.get("mode"))),
        None => text(status.get("mode")),
    };
    let summary = format!(
        "mode {mode} · backend {} · {} worker{} · refused {}",
        text(status.get("backend")),
        workers.len(),
        if workers.len() == 1 { "" } else { "s" },
        number(status.get("refused")),
    );
    let mut out = String::with_capacity(256 + rows.len() * 128);
    out.push_str(&summary);
    out.push('\n');
    rule(&mut out, &widths, ['┌', '┬', '┐']);
    let header: Vec<String> = COLUMNS.iter().map(|(name, _)| name.to_string()).collect();
    line(&mut out, &widths, &header, &[false; 10]);
    rule(&mut out, &widths, ['├', '┼', '┤']);
    let right: Vec<bool> = COLUMNS.iter().map(|(_, numeric)| *numeric).collect();
    for row in &rows {
        line(&mut out, &widths, row, &right);
    }
    rule(&mut out, &widths, ['└', '┴', '┘']);
    Ok(out)
}

fn rule(out: &mut String, widths: &[usize], [left, middle, right]: [char; 3]) {
    out.push(left);
    for (i, width) in widths.iter().enumerate() {
        if i > 0 {
            out.push(middle);
        }
        out.extend(std::iter::repeat_n('─', width + 2));
    }
    out.push(right);
    out.push('\n');
}

fn line(out: &mut String, widths: &[usize], cells: &[String], right: &[bool]) {
    out.push('│');
    for ((cell, width), right) in cells.iter().zip(widths).zip(right) {
        let pad = width - cell.chars().count();
        out.push(' ');
        if *right {
            out.extend(std::iter::repeat_n(' ', pad));
            out.push_str(cell);
        } else {
            out.push_str(cell);
            out.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(" │");
    }
    out.push('\n');
}

/// An uptime in its largest unit, as `pm2 list` shows it: `42s`, `5m`, `3h`, `2D`.
fn duration(ms: u64) -> String {
    let seconds = ms / 1000;
    match seconds {
        0..=59 => format!("{seconds}s"),
        60..=3599 => format!("{}m", seconds / 60),
        3600..=86_399 => format!("{}h", seconds / 3600),
        _ => format!("{}D", seconds / 86_400),
    }
}

/// Bytes in binary units: `812 KiB`, `45.2 MiB`.
fn bytes(n: u64) -> String {
    const KIB: f64 = 1024.0;
    let n = n as f64;
    if n < KIB * KIB {
        format!("{:.0} KiB", n / KIB)
    } else if n < KIB * KIB * KIB {
        format!("{:.1} MiB", n / (KIB * KIB))
    } else {
        format!("{:.2} GiB", n / (KIB * KIB * KIB))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_like_pm2_list() {
        let line = r#"{"mode":"rr","backend":"uring","refused":0,"workers":[
            {"id":1,"pid":1235,"cpu":0,"accepted":10,"requests":25,"live":3,"rejected":0,"state":"ready","restarts":0,"uptime_ms":305000,"lame_duck":false,"req_per_s":12.5,"rss_bytes":4404019,"cpu_seconds":0.12},
            {"id":2,"pid":1236,"cpu":null,"accepted":0,"requests":1234567,"live":0,"rejected":0,"state":"ready","restarts":12,"uptime_ms":5000,"lame_duck":true,"req_per_s":0.0,"rss_bytes":null,"cpu_seconds":null},
            {"id":3,"pid":null,"cpu":1,"accepted":0,"requests":0,"live":0,"rejected":0,"state":"exited","restarts":1,"uptime_ms":0,"lame_duck":false,"req_per_s":0.0,"rss_bytes":null,"cpu_seconds":null}]}"#;
        let table = render(&Json::parse(line).expect("json")).expect("table");
        let expected = "\
mode rr · backend uring · 3 workers · refused 0
┌────┬──────┬─────┬───────────┬────────┬──────────┬──────┬──────────┬───────┬─────────┐
│ id │ pid  │ cpu │ state     │ uptime │ restarts │ live │ requests │ req/s │ memory  │
├────┼──────┼─────┼───────────┼────────┼──────────┼──────┼──────────┼───────┼─────────┤
│  1 │ 1235 │   0 │ ready     │     5m │        0 │    3 │       25 │  12.5 │ 4.2 MiB │
│  2 │ 1236 │   - │ lame duck │     5s │       12 │    0 │  1234567 │   0.0 │       - │
│  3 │    - │   1 │ exited    │      - │        1 │    0 │        0 │   0.0 │       - │
└────┴──────┴─────┴───────────┴────────┴──────────┴──────┴──────────┴───────┴─────────┘
";
        assert_eq!(table, expected);
    }

    #[test]
    fn the_summary_says_how_reuseport_is_steered() {
        let line = r#"{"mode":"reuseport","steer":"hash","backend":"epoll","refused":0,"workers":[]}"#;
        let table = render(&Json::parse(line).expect("json")).expect("table");
        assert!(table.starts_with("mode reuseport (hash) · backend epoll · 0 workers"), "{table}");
    }

    #[test]
    fn units() {
        assert_eq!(
            [duration(59_999), duration(60_000), duration(7_200_000), duration(90_000_000)],
            ["59s", "1m", "2h", "1D"]
        );
        assert_eq!([bytes(812 * 1024), bytes(47_395_635), bytes(3 << 30)], ["812 KiB", "45.2 MiB", "3.00 GiB"]);
    }

    #[test]
    fn a_line_without_workers_is_an_error() {
        assert!(render(&Json::parse("{\"mode\":\"rr\"}").expect("json")).is_err());
    }
}
