//! CPU time a process has used, from `/proc/<pid>/stat`: how the benchmarks measure the
//! bench process and its nats-server per operation (steadier than rates on a shared machine).

/// Clock ticks per second of /proc's utime and stime (USER_HZ; 100 on Linux everywhere).
const TICKS_PER_S: f64 = 100.0;

/// utime + stime of `pid` (a process id, `self`, or `thread-self` for the calling thread) in
/// seconds; 0 where unreadable.
pub fn cpu_seconds(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line; `rest` starts at field 3.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / TICKS_PER_S
}

#[cfg(test)]
mod tests {
    use super::cpu_seconds;

    #[test]
    fn this_process_has_used_cpu_and_a_missing_one_none() {
        let mut x = 0u64;
        let started = std::time::Instant::now();
        while started.elapsed() < std::time::Duration::from_millis(30) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(x > 0);
        assert!(cpu_seconds("self") > 0.0);
        assert!(cpu_seconds("thread-self") > 0.0);
        assert_eq!(cpu_seconds("0"), 0.0);
        assert_eq!(cpu_seconds("not-a-pid"), 0.0);
    }
}
