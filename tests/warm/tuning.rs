//! `AGENTDISPATCH_WARM_TUNING`: a plain-fork warm parent serves tasks with none of the tricks, and
//! the ready line says which tricks ran and what the version gate saw.

use super::*;

#[tokio::test]
async fn a_plain_warm_parent_forks_tasks_with_none_of_the_tricks_and_says_so() {
    for tuning in ["plain", "full"] {
        let w = fixture_worker(
            Kind::Warm,
            WorkerBuilder::new().env("AGENTDISPATCH_WARM_TUNING", tuning),
        )
        .await;
        let parent = w.warm_ready("pyfixture", 1).await;
        let field = |key| ready_field(&w, "pyfixture", key).unwrap_or_default();
        assert_eq!(field("tuning"), tuning);
        assert!(
            field("runtime").starts_with("CPython 3."),
            "{}",
            field("runtime")
        );
        if tuning == "plain" {
            assert_eq!(field("tricks"), "");
            assert_eq!(fork_mode(&w, "pyfixture"), "double");
            assert!(
                field("tricksOff").contains("learn: AGENTDISPATCH_WARM_TUNING=plain"),
                "{}",
                field("tricksOff")
            );
        } else {
            // Full: at least the tricks every machine the tests run on allows.
            let tricks = field("tricks");
            for trick in ["plugs", "huge", "learn"] {
                assert!(tricks.split(',').any(|t| t == trick), "{tricks}");
            }
        }
        // Past the three tasks that would learn: a plain spare still copies nothing ahead.
        for i in 0..4 {
            let id = format!("tuning-{tuning}-{i}");
            let r = w.fixture_task(Kind::Warm, &id, "state").await;
            assert_eq!(r["ok"], true, "{r:#}");
            assert_eq!(forked_from(&r), Some(parent), "{r:#}");
            assert_eq!(output_json(&r)["ppid"], w.pid());
            let fork = fork_event(&w, &id);
            if tuning == "plain" {
                assert_eq!(fork["pagesAhead"], 0, "{fork}");
                assert_eq!(fork["holderPid"], Value::Null, "{fork}");
            }
        }
    }
}
