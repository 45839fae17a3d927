//! CPU time spent by this process (clients and in-process engines) and by the nats-server,
//! per operation. Unlike rates, CPU per operation hardly moves when other work shares the
//! machine, so it is the steadier comparison on a busy 2-core box.

use paystate_broker::cpu_seconds as cpu_s;

/// CPU seconds used so far by this process and the server.
pub struct CpuMeter {
    server_pid: Option<u32>,
    own_s: f64,
    server_s: f64,
}

/// Microseconds of CPU per operation.
#[derive(Debug, Clone, Copy, serde::Serialize, schemars::JsonSchema)]
pub struct CpuPerOp {
    /// This process: clients and (where they run here) engines.
    pub bench_us: f64,
    pub server_us: f64,
}

impl CpuPerOp {
    pub fn total_us(&self) -> f64 {
        self.bench_us + self.server_us
    }
}

impl CpuMeter {
    pub fn start(server_pid: Option<u32>) -> CpuMeter {
        CpuMeter {
            server_pid,
            own_s: cpu_s("self"),
            server_s: server_pid.map_or(0.0, |p| cpu_s(&p.to_string())),
        }
    }

    /// CPU used since `start`, per operation of `ops`.
    pub fn per_op(&self, ops: u64) -> CpuPerOp {
        let ops = ops.max(1) as f64;
        let (own, server) = self.seconds();
        CpuPerOp {
            bench_us: own * 1e6 / ops,
            server_us: server * 1e6 / ops,
        }
    }

    /// CPU seconds used since `start`: (this process, the server).
    pub fn seconds(&self) -> (f64, f64) {
        let own = cpu_s("self") - self.own_s;
        let server = self
            .server_pid
            .map_or(0.0, |p| cpu_s(&p.to_string()) - self.server_s);
        (own, server)
    }
}
