//! The memory tricks seen from outside: huge pages, pages copied ahead only for a task likely to
//! run alone, and the memory holder that is no task process.

use super::*;

/// Whether the kernel may back memory with transparent huge pages at all.
fn thp_possible() -> bool {
    std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
        .is_ok_and(|t| !t.contains("[never]"))
}

/// AnonHugePages of a process, in kB.
fn anon_huge_kb(pid: u64) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("AnonHugePages:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_warm_parents_heap_goes_to_huge_pages_and_its_tasks_still_copy_only_what_they_write() {
    // 48 MB of the parent's heap in 2 MB pages: a spare's clone copies an entry per huge page,
    // and a task that writes into one gets its own copy of only the 4 KB it wrote.
    let expected: u64 = (0..48u64).map(|i| 2 * (i % 251)).sum();
    for huge in ["1", "0"] {
        let w = fixture_worker(
            Kind::Warm,
            WorkerBuilder::new()
                .env("FIXTURE_BIG_HEAP", "48")
                .env("AGENTDISPATCH_WARM_HUGE", huge),
        )
        .await;
        let parent = w.warm_ready("pyfixture", 1).await;
        let said = w
            .log_lines()
            .into_iter()
            .find(|l| l["message"] == "warm parent ready")
            .and_then(|l| l["hugeMB"].as_f64())
            .expect("the ready line says how much is in huge pages");
        if huge == "0" {
            assert_eq!(said, 0.0);
        } else if thp_possible() {
            assert!(said >= 16.0, "only {said} MB in huge pages");
            assert!(
                anon_huge_kb(parent) >= 16 * 1024,
                "{}",
                anon_huge_kb(parent)
            );
        } else {
            eprintln!("SKIPPED: transparent huge pages are off here; only the tasks were checked");
        }
        for i in 0..3 {
            let r = w
                .fixture_task(Kind::Warm, &format!("huge-{huge}-{i}"), "heap")
                .await;
            assert_eq!(r["ok"], true, "{r:#}");
            let s = output_json(&r);
            assert_eq!(s["blocks"], 48);
            assert_eq!(s["sum"].as_u64(), Some(expected), "{s}");
            // Its own copies: the pages it and the runner wrote, far from the 48 MB it shares.
            assert!(
                s["privateDirtyKb"].as_u64().unwrap() < 24 * 1024,
                "huge={huge}: the task holds {s} of its own"
            );
        }
    }
}

/// How many pages the spare of the warm task `id` copied ahead (its fork event); checks that
/// it had a memory holder exactly when it copied pages ahead (both only for a task alone).
fn pages_ahead(w: &Worker, id: &str) -> u64 {
    let fork = fork_event(w, id);
    let n = fork["pagesAhead"]
        .as_u64()
        .unwrap_or_else(|| panic!("{id}: no pagesAhead: {fork}"));
    if n > 0 {
        assert!(
            fork["holderPid"].is_u64(),
            "{id}: alone without a holder: {fork}"
        );
    } else if fork["holderPid"].is_u64() {
        // A learning task ran alone too, with nothing learnt to copy yet.
        assert!(
            id.contains("learn"),
            "{id}: a holder beside other tasks: {fork}"
        );
    }
    n
}

#[tokio::test]
async fn a_spare_copies_pages_ahead_only_for_a_task_likely_to_run_alone() {
    // A spare forked after a request that ran alone copies the learnt pages before its task and
    // has a memory holder; one forked after a request that had other tasks beside it has
    // neither (copies idle in it, and finished tasks' memory in holders, while the others run).
    let w = fixture_worker(Kind::Warm, WorkerBuilder::new()).await;
    w.warm_ready("pyfixture", 1).await;
    // The first three tasks learn (their spares had nothing to copy yet); the spare made after
    // the fourth request, which ran alone, copies what they wrote.
    for i in 0..4 {
        let r = w
            .fixture_task(Kind::Warm, &format!("ahead-learn-{i}"), "state")
            .await;
        assert_eq!(r["ok"], true, "{r:#}");
    }
    w.fixture_task(Kind::Warm, "ahead-alone", "state").await;
    assert!(pages_ahead(&w, "ahead-alone") > 0);
    // Three tasks at once. Their fork requests go in any order; the one forked last had a
    // spare made while another ran, so at least one of them got nothing ahead.
    let mut ids = Vec::new();
    for i in 0..3 {
        let id = format!("ahead-busy-{i}");
        let mut body = fixture(&id, "sleep 4");
        body["async"] = json!(true);
        assert_eq!(w.run(body).await["status"], "running");
        ids.push(id);
    }
    let forked = |id: &String| {
        w.folder_events(id)
            .iter()
            .any(|e| e["type"] == "task.log" && e["payload"]["warm"] == true)
    };
    assert!(eventually(Duration::from_secs(20), || ids.iter().all(forked)).await);
    // A task started while those run: its spare was made after a request beside others.
    w.fixture_task(Kind::Warm, "ahead-beside", "state").await;
    assert_eq!(pages_ahead(&w, "ahead-beside"), 0);
    assert_eq!(fork_event(&w, "ahead-beside")["holderPid"], Value::Null);
    let mut ahead = Vec::new();
    for id in &ids {
        let r = w.wait_done(id).await;
        assert_eq!(r["status"], "succeeded", "{r:#}");
        ahead.push(pages_ahead(&w, id));
    }
    assert!(ahead.contains(&0), "{ahead:?}");
    // Alone again: copied ahead again (the spare after the next request that runs alone).
    w.fixture_task(Kind::Warm, "ahead-again-0", "state").await;
    w.fixture_task(Kind::Warm, "ahead-again-1", "state").await;
    assert!(pages_ahead(&w, "ahead-again-1") > 0);
}

#[tokio::test]
async fn a_warm_tasks_memory_holder_is_no_task_process_and_ends_with_the_task() {
    // The holder shares the task's memory so that the task's exit does not wait for its
    // tear-down; it must never count as (or outlive) the task.
    let w = fixture_worker(Kind::Warm, WorkerBuilder::new()).await;
    let id = format!("holder-{}", std::process::id());
    let mut body = fixture(&id, "sleep 60");
    body["async"] = json!(true);
    assert_eq!(w.run(body).await["status"], "running");
    let status = || w.run(json!({"taskType": "task.status", "taskId": id}));
    assert!(
        eventually_async(Duration::from_secs(10), || async {
            holder_of(&status().await).is_some()
        })
        .await,
        "no holderPid in {:#}",
        status().await
    );
    let holder = holder_of(&status().await).unwrap();
    let task = task_processes(&id);
    assert_eq!(
        task.len(),
        2,
        "the task and its holder carry the marker: {task:?}"
    );
    let leader = *task.iter().find(|p| **p != holder).unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{holder}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    assert_ne!(
        fields[2],
        leader.to_string(),
        "the holder is in the task's group: {stat}"
    );
    assert_ne!(
        fields[3],
        leader.to_string(),
        "the holder is in the task's session: {stat}"
    );
    let r = w
        .run(json!({"taskType": "task.cancel", "taskId": id}))
        .await;
    assert_eq!(r["status"], "cancelled", "{r:#}");
    let notes: Vec<&str> = events_of(&r, "task.log")
        .into_iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert!(
        !notes.iter().any(|m| m.contains("outside")),
        "the holder was signalled as the task's: {notes:?}"
    );
    assert!(
        eventually(Duration::from_secs(10), || state(holder).is_none()).await,
        "the holder {holder} outlived its task ({:?})",
        state(holder)
    );
    // A task that ends by itself: its holder goes too, and nothing is left to reap.
    let r = w.fixture_task(Kind::Warm, "holder-done", "state").await;
    let holder = holder_of(&r).expect("a holder");
    assert!(eventually(Duration::from_secs(10), || state(holder).is_none()).await);
    assert!(
        eventually(Duration::from_secs(3), || zombie_children(w.pid())
            .is_empty())
        .await
    );
}
