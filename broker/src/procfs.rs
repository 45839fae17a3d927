//! What /proc says about a process: the CPU time it has used (how the benchmarks measure the
//! bench process and its nats-server per operation, steadier than rates on a shared machine),
//! its state, and a parent's nats-server child (how tests check that a stopped command left no
//! server behind, running or as a zombie).

/// Clock ticks per second of /proc's utime and stime (USER_HZ; 100 on Linux everywhere).
const TICKS_PER_S: f64 = 100.0;

/// utime + stime of `pid` (a process id, `self`, or `thread-self` for the calling thread) in
/// seconds; 0 where unreadable.
pub fn cpu_seconds(pid: &str) -> f64 {
    let Some(fields) = stat_fields(pid) else {
        return 0.0;
    };
    // utime and stime are fields 14 and 15 of the line; the fields here start at field 3.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / TICKS_PER_S
}

/// The state letter of process `pid` (`R`, `S`, ..., `Z` for a zombie); `None` once it is gone.
pub fn process_state(pid: &str) -> Option<String> {
    stat_fields(pid)?.into_iter().next()
}

/// The pid of a process named `name` (its `comm`, at most 15 bytes) whose parent is `parent`.
pub fn child_named(parent: &str, name: &str) -> Option<String> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid = entry.file_name().to_string_lossy().into_owned();
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let field = |key: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
            };
            (field("Name:")? == name && field("PPid:")? == parent).then_some(pid)
        })
}

/// The fields of `/proc/<pid>/stat` from the third (the state) on. Why from there: the second
/// is the command name in parentheses, which may hold spaces; the rest follows the last `)`.
fn stat_fields(pid: &str) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

#[cfg(test)]
mod tests {
    use super::{child_named, cpu_seconds, process_state};

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

    #[test]
    fn a_child_is_found_by_name_and_parent_and_is_gone_once_waited_for() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep runs");
        let me = std::process::id().to_string();
        let pid = child.id().to_string();
        assert_eq!(child_named(&me, "sleep"), Some(pid.clone()));
        assert_eq!(child_named(&me, "nats-server"), None);
        assert_eq!(child_named("1", "sleep"), None, "not its parent");
        let alive = process_state(&pid);
        assert!(
            matches!(alive.as_deref(), Some("R" | "S" | "D")),
            "{alive:?}"
        );
        child.kill().expect("killed");
        // Killed and not yet waited for: a zombie; once waited for: gone.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while process_state(&pid).as_deref() != Some("Z") {
            assert!(std::time::Instant::now() < deadline, "never a zombie");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        child.wait().expect("waited for");
        assert_eq!(process_state(&pid), None);
        assert_eq!(process_state("not-a-pid"), None);
    }
}
