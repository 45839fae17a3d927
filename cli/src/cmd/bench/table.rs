//! The report: one row per measurement with its yardstick, ratio and goal; printed as a
//! table for people and as JSON for machines.

use serde::Serialize;

/// Everything one `paystate bench` run measured, with where and when.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Report {
    /// UTC, RFC 3339.
    pub date: String,
    pub machine: String,
    pub nats_server: String,
    /// `full` or `quick`.
    pub mode: &'static str,
    /// 1-minute load average before and after the run (other work on the machine skews it).
    pub load_before: f64,
    pub load_after: f64,
    pub seconds: f64,
    pub rows: Vec<Row>,
}

/// One measurement.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Row {
    /// Stable id (`raw_append`, `engine_throughput`, ...).
    pub id: &'static str,
    /// The row number (1–9).
    pub number: u8,
    pub name: &'static str,
    pub value: f64,
    pub unit: &'static str,
    /// The row this one is compared with, and the ratio value / yardstick value.
    pub yardstick: Option<&'static str>,
    pub ratio: Option<f64>,
    pub goal: Option<String>,
    pub holds: Option<bool>,
    /// Further figures (percentiles, counts) in words.
    pub detail: String,
    /// CPU per operation (message or command), where measured.
    pub cpu: Option<super::cpu::CpuPerOp>,
}

impl Row {
    pub fn new(
        id: &'static str,
        number: u8,
        name: &'static str,
        value: f64,
        unit: &'static str,
    ) -> Row {
        Row {
            id,
            number,
            name,
            value,
            unit,
            yardstick: None,
            ratio: None,
            goal: None,
            holds: None,
            detail: String::new(),
            cpu: None,
        }
    }

    /// Compared with `yardstick` (whose value is `base`).
    pub fn against(mut self, yardstick: &'static str, base: f64) -> Row {
        self.yardstick = Some(yardstick);
        self.ratio = Some(self.value / base);
        self
    }

    pub fn goal(mut self, goal: impl Into<String>, holds: bool) -> Row {
        self.goal = Some(goal.into());
        self.holds = Some(holds);
        self
    }

    pub fn cpu(mut self, cpu: super::cpu::CpuPerOp) -> Row {
        self.cpu = Some(cpu);
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Row {
        self.detail = detail.into();
        self
    }
}

impl Report {
    /// The value of row `id`, if it ran.
    pub fn value(&self, id: &str) -> Option<f64> {
        self.rows.iter().find(|r| r.id == id).map(|r| r.value)
    }

    pub fn render(&self) -> String {
        let mut out = format!(
            "paystate bench ({mode}) {date}\nmachine: {machine}; nats-server {nats}\nload average {before:.2} before, {after:.2} after; {secs:.0} s\n\n",
            mode = self.mode,
            date = self.date,
            machine = self.machine,
            nats = self.nats_server,
            before = self.load_before,
            after = self.load_after,
            secs = self.seconds,
        );
        // The scenario column as wide as its longest name, so the numbers line up.
        let w = self
            .rows
            .iter()
            .map(|r| r.name.chars().count())
            .max()
            .unwrap_or(0)
            .max(28);
        out += &format!(
            "{:<3} {:<w$} {:>16} {:<20} {:>7}  {:<20} {:<5}\n",
            "#", "scenario", "measured", "yardstick", "ratio", "goal", "holds"
        );
        for r in &self.rows {
            out += &format!(
                "{:<3} {:<w$} {:>16} {:<20} {:>7}  {:<20} {:<5}\n",
                r.number,
                r.name,
                format!("{} {}", human(r.value), r.unit),
                r.yardstick.unwrap_or("-"),
                r.ratio.map_or("-".to_string(), |x| format!("{x:.2}x")),
                r.goal.as_deref().unwrap_or("-"),
                r.holds.map_or("-", |h| if h { "yes" } else { "NO" }),
            );
            if !r.detail.is_empty() {
                out += &format!("    {}\n", r.detail);
            }
            if let Some(c) = r.cpu {
                out += &format!(
                    "    CPU per {}: {:.1} us bench process + {:.1} us nats-server = {:.1} us\n",
                    r.unit.trim_end_matches("/s"),
                    c.bench_us,
                    c.server_us,
                    c.total_us()
                );
            }
        }
        out
    }
}

/// 1234567.8 → "1,234,568"; small values keep decimals.
pub fn human(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    if v.abs() < 100.0 {
        return format!("{v:.2}");
    }
    let digits = format!("{:.0}", v.abs());
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    if v < 0.0 {
        grouped.insert(0, '-');
    }
    grouped
}

/// "CPU model, N cores, M GiB, Linux x.y" from /proc (best effort).
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cpu}, {cores} cores, {mem_gib:.0} GiB, Linux {}",
        kernel.trim()
    )
}

/// The 1-minute load average (NaN where unknown).
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_measured_column_lines_up_whatever_the_names_length() {
        let report = Report {
            date: "2026-12-05T08:00:00Z".into(),
            machine: "test".into(),
            nats_server: "2.15.1".into(),
            mode: "quick",
            load_before: 0.0,
            load_after: 0.0,
            seconds: 1.0,
            rows: vec![
                Row::new("a", 1, "short", 1.0, "msg/s"),
                Row::new(
                    "b",
                    2,
                    "a scenario name longer than twenty-eight",
                    2.0,
                    "msg/s",
                ),
            ],
        };
        let text = report.render();
        let ends: Vec<usize> = text
            .lines()
            .filter(|l| l.contains("msg/s"))
            .filter_map(|l| l.find("msg/s"))
            .collect();
        assert_eq!(ends.len(), 2, "{text}");
        assert_eq!(ends[0], ends[1], "{text}");
    }
}
