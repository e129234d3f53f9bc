//! Warm starts against the floor a user would otherwise pick, in one run (SPEC §6.3):
//!
//! 1. The shipped LangGraph example agent served three ways: in-process by AWS's
//!    `bedrock-agentcore` (`bench/agentcore/serve.py`, the floor), through the worker with a
//!    warm parent, and through the worker with a cold child per task. For each: start → first
//!    `/ping`, sequential invocation p50/p90, agent runs/s with 4 clients, request → first
//!    framework step over SSE (the worker only: the floor has no per-step events), and the peak
//!    PSS of the server and every process under it while 4 clients run. The floor and the
//!    warm worker are alive together and measured in alternating blocks (`BLOCKS`), so that a
//!    slower or faster spell of the machine lands on both.
//! 2. All six frameworks, cold and warm: request → first step and → result over SSE.
//!
//! ```sh
//! scripts/setup-frameworks.sh && scripts/setup-frameworks.sh bench/agentcore
//! cargo bench --bench warm                      # both parts
//! cargo bench --bench warm -- --runs 200 langgraph
//! ```

use std::time::{Duration, Instant};

use serde_json::json;

mod common;
use common::{percentile, Server};

/// The six frameworks' names.
fn six() -> impl Iterator<Item = &'static str> {
    common::FRAMEWORKS.iter().map(|(name, _)| *name)
}

async fn start_worker(warm: &str, default_framework: &str) -> Server {
    common::frameworks_worker(warm, default_framework, &[]).await
}

impl Server {
    /// Start → first 200 from `/ping` (polled every millisecond).
    async fn ping_after_start(&self, http: &reqwest::Client) -> Duration {
        self.first_ping(http, Duration::from_secs(120), Duration::from_millis(1))
            .await
            .expect("/ping")
    }

    /// One invocation of the hello-world prompt, JSON; its wall time.
    async fn invoke(&self, http: &reqwest::Client, framework: &str) -> Duration {
        let started = Instant::now();
        let body = json!({"prompt": "hello world", "framework": framework});
        let (_, v) = common::post_json(http, &self.url, &body)
            .await
            .expect("POST /invocations");
        assert_eq!(v["ok"], true, "{v}");
        assert_eq!(v["output"], "Shouted: HELLO WORLD", "{v}");
        started.elapsed()
    }

    /// One SSE invocation: (request → first framework step, request → result).
    async fn stream(&self, http: &reqwest::Client, framework: &str) -> (Duration, Duration) {
        let started = Instant::now();
        let body = json!({"prompt": "hello world", "framework": framework});
        let resp = common::post_sse(http, &self.url, &body)
            .await
            .expect("POST /invocations");
        let (mut step, mut result) = (None, None);
        common::read_sse(resp, |_, v| {
            if v["type"] == "task.progress" && v["payload"]["step"].is_string() {
                step.get_or_insert(started.elapsed());
            }
            if v.get("ok").is_some() {
                assert_eq!(v["ok"], true, "{framework}: {v}");
                result = Some(started.elapsed());
            }
        })
        .await
        .expect("SSE body");
        (
            step.unwrap_or_else(|| panic!("{framework}: no step event")),
            result.expect("a result"),
        )
    }
}

/// Where the CPU went during 4-client rounds.
#[derive(Clone, Copy, Default)]
struct RoundCpu {
    /// CPU time of the served tree (server, everything under it, what they reaped) per run.
    per_run_ms: f64,
    /// The machine's busy and stolen time, as a share of all its CPUs' time over the rounds.
    busy_pct: f64,
    steal_pct: f64,
}

/// What 4-client rounds added up to: runs, seconds, tree CPU seconds, machine ticks.
#[derive(Clone, Default)]
struct Rounds {
    runs: usize,
    cpu_secs: f64,
    busy: u64,
    idle: u64,
    steal: u64,
    /// Each round's runs per second.
    rates: Vec<f64>,
}

impl Rounds {
    /// The median of the rounds' rates (runs/s).
    fn rate(&self) -> f64 {
        let mut r = self.rates.clone();
        r.sort_by(|a, b| a.partial_cmp(b).unwrap());
        if r.is_empty() {
            return 0.0;
        }
        if r.len() % 2 == 1 {
            r[r.len() / 2]
        } else {
            (r[r.len() / 2 - 1] + r[r.len() / 2]) / 2.0
        }
    }

    fn cpu(&self) -> RoundCpu {
        let all = (self.busy + self.idle + self.steal).max(1) as f64;
        RoundCpu {
            per_run_ms: self.cpu_secs * 1000.0 / self.runs.max(1) as f64,
            busy_pct: self.busy as f64 / all * 100.0,
            steal_pct: self.steal as f64 / all * 100.0,
        }
    }
}

/// One 4-client round of `per_client` invocations each, added to `acc` (rate, CPU, machine).
async fn four_clients_counted(s: &Server, framework: &str, per_client: usize, acc: &mut Rounds) {
    let pid = s.pid();
    let cpu0 = common::tree_cpu_seconds(pid);
    let (busy0, idle0, steal0) = common::machine_ticks();
    let rate = four_clients_round(s, framework, per_client).await;
    let (busy1, idle1, steal1) = common::machine_ticks();
    acc.runs += 4 * per_client;
    acc.cpu_secs += common::tree_cpu_seconds(pid) - cpu0;
    acc.busy += busy1 - busy0;
    acc.idle += idle1 - idle0;
    acc.steal += steal1 - steal0;
    acc.rates.push(rate);
}

/// The peak tree PSS in kB over one 4-client round. The sampler reads `smaps_rollup` of every
/// process of the tree every 20 ms (~2 ms of CPU a sample for a warm worker's tree here, more
/// processes than the in-process server's one): measured apart so that it takes no CPU from
/// the rate.
async fn four_clients_pss(s: &Server, framework: &str, per_client: usize) -> u64 {
    let pid = s.pid();
    let sampler =
        common::Sampler::every(Duration::from_millis(20), move || common::tree_pss_kb(pid));
    four_clients_round(s, framework, per_client).await;
    sampler.finish().into_iter().max().unwrap_or(0)
}

/// 4 clients, `per_client` invocations each; runs per second.
async fn four_clients_round(s: &Server, framework: &str, per_client: usize) -> f64 {
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..4 {
        let url = s.url.clone();
        let framework = framework.to_string();
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            for _ in 0..per_client {
                let body = json!({"prompt": "hello world", "framework": framework});
                let (_, v) = common::post_json(&http, &url, &body).await.unwrap();
                assert_eq!(v["ok"], true, "{v}");
            }
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    (4 * per_client) as f64 / started.elapsed().as_secs_f64()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// The figures of one way of serving the LangGraph agent.
struct Served {
    name: &'static str,
    first_ping: Duration,
    ready: Option<Duration>,
    p50: Duration,
    p90: Duration,
    rate: f64,
    cpu: RoundCpu,
    first_step: Option<Duration>,
    pss_kb: u64,
}

/// How many blocks the floor's and the warm worker's sequential runs, and their 4-client
/// rounds, are cut into: they alternate (floor, warm, warm, floor, …), so that a slower or
/// faster spell of this shared machine lands on both rather than on one of them.
const BLOCKS: usize = 4;

/// Start → first `/ping` (and → warm parents ready), then 3 warm-up invocations: the first runs
/// learn, import lazily, fill caches.
async fn started(s: &Server, warm_parents: usize) -> Start {
    let http = reqwest::Client::new();
    let first_ping = s.ping_after_start(&http).await;
    let ready = if warm_parents > 0 {
        Some(s.warm_ready(warm_parents).await)
    } else {
        None
    };
    for _ in 0..3 {
        s.invoke(&http, "langgraph").await;
    }
    (first_ping, ready)
}

/// Measures the servers together: sequential runs in `BLOCKS` alternating blocks, request →
/// first step over SSE (the workers only), 4-client rounds alternating likewise, then one
/// PSS round each. `runs` sequential runs and `4 × per_client` runs in 4-client rounds each.
/// Start → first `/ping`, and → warm parents ready.
type Start = (Duration, Option<Duration>);

/// `servers`: name, server, its start figures (from [`started`], each taken before the next
/// server was spawned), whether it is a worker.
async fn measure_together(
    servers: &[(&'static str, &Server, Start, bool)],
    runs: usize,
    per_client: usize,
) -> Vec<Served> {
    let http = reqwest::Client::new();
    let order = |block: usize| -> Vec<usize> {
        let mut o: Vec<usize> = (0..servers.len()).collect();
        if block % 2 == 1 {
            o.reverse();
        }
        o
    };
    let mut seq: Vec<Vec<Duration>> = vec![Vec::new(); servers.len()];
    for block in 0..BLOCKS {
        for i in order(block) {
            for _ in 0..runs.div_ceil(BLOCKS) {
                seq[i].push(servers[i].1.invoke(&http, "langgraph").await);
            }
        }
    }
    let mut first_step = vec![None; servers.len()];
    for (i, (_, s, _, worker)) in servers.iter().enumerate() {
        if *worker {
            let mut steps = Vec::new();
            for _ in 0..runs.min(50) {
                steps.push(s.stream(&http, "langgraph").await.0);
            }
            first_step[i] = Some(percentile(&steps, 50.0));
        }
    }
    let mut rounds = vec![Rounds::default(); servers.len()];
    let per_round = per_client.div_ceil(BLOCKS).max(1);
    for block in 0..BLOCKS {
        for i in order(block) {
            four_clients_counted(servers[i].1, "langgraph", per_round, &mut rounds[i]).await;
        }
    }
    let mut out = Vec::new();
    for (i, (name, s, start, _)) in servers.iter().enumerate() {
        let pss_kb = four_clients_pss(s, "langgraph", per_round).await;
        out.push(Served {
            name,
            first_ping: start.0,
            ready: start.1,
            p50: percentile(&seq[i], 50.0),
            p90: percentile(&seq[i], 90.0),
            rate: rounds[i].rate(),
            cpu: rounds[i].cpu(),
            first_step: first_step[i],
            pss_kb,
        });
    }
    out
}

async fn langgraph_against_the_floor(runs: usize) {
    let (floor, warm) = {
        let f = common::start_agentcore(&[], &[]);
        let f_start = started(&f, 0).await;
        let w = start_worker("langgraph", "langgraph").await;
        let w_start = started(&w, 1).await;
        let mut both = measure_together(
            &[
                ("`bedrock-agentcore` in-process (floor)", &f, f_start, false),
                ("worker, warm", &w, w_start, true),
            ],
            runs,
            runs / 2,
        )
        .await;
        let warm = both.pop().unwrap();
        (both.pop().unwrap(), warm)
    };
    let cold = {
        let s = start_worker("none", "langgraph").await;
        let start = started(&s, 0).await;
        measure_together(&[("worker, cold", &s, start, true)], 5, 3)
            .await
            .pop()
            .unwrap()
    };
    let seq = BLOCKS * runs.div_ceil(BLOCKS);
    let per_client = BLOCKS * (runs / 2).div_ceil(BLOCKS).max(1);
    println!("LangGraph example agent, \"hello world\"; {seq} sequential runs (cold: {}), 4 clients × {per_client} runs in {BLOCKS} rounds (cold: 4 × 1); the floor and the warm worker alternate block by block", BLOCKS * 5usize.div_ceil(BLOCKS));
    println!();
    println!("| served by | start → first `/ping` | warm parent ready | invocation p50 | p90 | 4 clients, runs/s | request → first step (SSE) | peak PSS, 4 clients |");
    println!("|---|---|---|---|---|---|---|---|");
    for s in [&floor, &warm, &cold] {
        println!(
            "| {} | {} | {} | {} | {} | {:.1} | {} | {:.0} MB |",
            s.name,
            ms(s.first_ping),
            s.ready.map_or("—".into(), ms),
            ms(s.p50),
            ms(s.p90),
            s.rate,
            s.first_step.map_or("—".into(), ms),
            s.pss_kb as f64 / 1024.0
        );
    }
    println!();
    println!("| 4 clients, served by | CPU per run (the served tree) | machine busy | stolen |");
    println!("|---|---|---|---|");
    for s in [&floor, &warm, &cold] {
        println!(
            "| {} | {:.1} ms | {:.0} % | {:.1} % |",
            s.name, s.cpu.per_run_ms, s.cpu.busy_pct, s.cpu.steal_pct
        );
    }
    let f = floor.p50.as_secs_f64() * 1000.0;
    let w = warm.p50.as_secs_f64() * 1000.0;
    println!();
    println!("| target (issue: warm agents) | warm figure | bound | met |");
    println!("|---|---|---|---|");
    let bound = 2.0 * f + 5.0;
    println!(
        "| sequential p50 ≤ 2 × in-process + 5 ms | {w:.1} ms | {bound:.1} ms | {} |",
        yes(w <= bound)
    );
    let half = floor.rate / 2.0;
    println!(
        "| 4-client runs/s ≥ 50 % of in-process | {:.1} | {half:.1} | {} |",
        warm.rate,
        yes(warm.rate >= half)
    );
    let step = warm.first_step.unwrap().as_secs_f64() * 1000.0;
    println!(
        "| request → first step over SSE ≤ 20 ms | {step:.1} ms | 20 ms | {} |",
        yes(step <= 20.0)
    );
    let pss_bound = floor.pss_kb as f64 * 1.5;
    println!(
        "| PSS with 4 concurrent tasks ≤ 1.5 × in-process | {:.0} MB | {:.0} MB | {} |",
        warm.pss_kb as f64 / 1024.0,
        pss_bound / 1024.0,
        yes(warm.pss_kb as f64 <= pss_bound)
    );
    println!(
        "\nratios: p50 warm/in-process {:.2}×, cold/in-process {:.0}×; runs/s warm/in-process {:.0} %",
        w / f,
        cold.p50.as_secs_f64() * 1000.0 / f,
        warm.rate / floor.rate * 100.0
    );
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "**no**"
    }
}

async fn six_frameworks(runs: usize, only: &[String]) {
    let chosen: Vec<&str> = six()
        .filter(|n| only.is_empty() || only.iter().any(|o| o == n))
        .collect();
    let http = reqwest::Client::new();
    let warm = start_worker("all", "echo").await;
    warm.ping_after_start(&http).await;
    let cold = start_worker("none", "echo").await;
    cold.ping_after_start(&http).await;
    warm.warm_ready(common::FRAMEWORKS.len()).await;
    println!("\nEach framework's example agent, \"hello world\" over SSE, median of {runs} (after one warm-up run each)");
    println!();
    println!("| framework | cold: first step | cold: result | warm: first step | warm: result | result, cold / warm |");
    println!("|---|---|---|---|---|---|");
    for name in chosen {
        let mut figures = Vec::new();
        for s in [&cold, &warm] {
            s.stream(&http, name).await;
            let (mut step, mut result) = (Vec::new(), Vec::new());
            for _ in 0..runs {
                let (a, b) = s.stream(&http, name).await;
                step.push(a);
                result.push(b);
            }
            figures.push((percentile(&step, 50.0), percentile(&result, 50.0)));
        }
        let ((cs, cr), (ws, wr)) = (figures[0], figures[1]);
        println!(
            "| {name} | {} | {} | {} | {} | {:.0}× |",
            ms(cs),
            ms(cr),
            ms(ws),
            ms(wr),
            cr.as_secs_f64() / wr.as_secs_f64()
        );
    }
}

fn main() {
    let (runs, only) = common::runs_and_names(100, 4);
    for name in six() {
        common::venv_python(name);
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        if only.is_empty() || only.iter().any(|o| o == "langgraph") {
            langgraph_against_the_floor(runs).await;
        }
        six_frameworks(3, &only).await;
    });
}
