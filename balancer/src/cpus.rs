//! CPU sets: parsing `--cpus 0,2-3` and choosing worker k's CPU.

use crate::error::{Error, Result};

/// Parses a CPU list such as `0,2-3` into CPU ids, in order, without repeats.
pub fn parse_cpu_list(text: &str) -> Result<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in text.split(',').map(str::trim) {
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (parse_cpu(a, text)?, parse_cpu(b, text)?),
            None => {
                let cpu = parse_cpu(part, text)?;
                (cpu, cpu)
            }
        };
        if first > last {
            return Err(Error::Config(format!("bad CPU range '{part}' in '{text}': it runs backwards")));
        }
        for cpu in first..=last {
            if !cpus.contains(&cpu) {
                cpus.push(cpu);
            }
        }
    }
    Ok(cpus)
}

fn parse_cpu(text: &str, whole: &str) -> Result<usize> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::Config(format!("bad CPU list '{whole}': expected numbers and ranges like 0,2-3")));
    }
    text.parse().map_err(|_| Error::Config(format!("bad CPU list '{whole}': '{text}' is too large")))
}

/// The CPUs this process may run on.
pub fn allowed_cpus() -> Vec<usize> {
    let mut cpus: Vec<usize> = core_affinity::get_core_ids().unwrap_or_default().into_iter().map(|c| c.id).collect();
    cpus.sort_unstable();
    cpus
}

/// Checks a requested set against the allowed one; `None` requests all allowed CPUs.
pub fn choose_cpus(requested: Option<&[usize]>, allowed: &[usize]) -> Result<Vec<usize>> {
    let Some(requested) = requested else {
        if allowed.is_empty() {
            return Err(Error::Config("cannot read the CPUs this process may run on".to_string()));
        }
        return Ok(allowed.to_vec());
    };
    if requested.is_empty() {
        return Err(Error::Config("--cpus names no CPU".to_string()));
    }
    if let Some(bad) = requested.iter().find(|cpu| !allowed.contains(cpu)) {
        let allowed = format_cpu_list(allowed);
        return Err(Error::Config(format!("--cpus: CPU {bad} is not available to this process (allowed: {allowed})")));
    }
    Ok(requested.to_vec())
}

/// Workers to run when `--workers` is not given: one per CPU of `--cpus`, else
/// one per CPU the process may run on (at least one).
pub fn default_workers(requested: Option<&[usize]>, allowed: &[usize]) -> usize {
    requested.unwrap_or(allowed).len().max(1)
}

/// The CPU of worker `id` (1-based): the id-th CPU of the set, wrapping around.
pub fn cpu_for_worker(cpus: &[usize], id: usize) -> usize {
    cpus[(id - 1) % cpus.len()]
}

/// Formats CPU ids compactly: `0-3,6`.
pub fn format_cpu_list(cpus: &[usize]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < cpus.len() {
        let start = cpus[i];
        let mut end = start;
        while i + 1 < cpus.len() && cpus[i + 1] == end + 1 {
            end += 1;
            i += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}-{end}"));
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_ranges() {
        assert_eq!(parse_cpu_list("0,2-3").ok(), Some(vec![0, 2, 3]));
        assert_eq!(parse_cpu_list(" 1 , 1-2 ").ok(), Some(vec![1, 2]));
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("a").is_err());
        assert!(parse_cpu_list("1,,2").is_err());
        assert!(parse_cpu_list("-1").is_err());
    }

    #[test]
    fn workers_wrap_around_the_set() {
        let cpus = [0, 2, 3];
        let chosen: Vec<usize> = (1..=5).map(|id| cpu_for_worker(&cpus, id)).collect();
        assert_eq!(chosen, [0, 2, 3, 0, 2]);
    }

    #[test]
    fn requested_cpus_must_be_allowed() {
        assert_eq!(choose_cpus(Some(&[1]), &[0, 1]).ok(), Some(vec![1]));
        assert!(choose_cpus(Some(&[7]), &[0, 1]).unwrap_err().to_string().contains("CPU 7"));
        assert_eq!(choose_cpus(None, &[0, 1]).ok(), Some(vec![0, 1]));
        assert_eq!(format_cpu_list(&[0, 1, 2, 5, 7, 8]), "0-2,5,7-8");
    }

    #[test]
    fn one_worker_per_listed_cpu_by_default() {
        assert_eq!(default_workers(Some(&[1]), &[0, 1, 2, 3]), 1);
        assert_eq!(default_workers(Some(&[0, 2, 3]), &[0, 1, 2, 3]), 3);
        assert_eq!(default_workers(None, &[0, 1, 2, 3]), 4);
        assert_eq!(default_workers(None, &[]), 1);
    }
}
