//! The `run` and `frameworks` subcommands: one payload run locally with no server, and the
//! list of frameworks with where each comes from.

pub mod ask;

use std::io::{IsTerminal, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::frameworks::{Launch, Registry};
use crate::task::{RequestIds, Start, Worker};
use crate::wire::{payload_from_value, ErrorCode, Payload, TaskResult, TaskType};

/// What `run` was asked to do (its flags; the doc comments are its `--help`).
#[derive(Debug, Default, Clone, clap::Args)]
pub struct RunArgs {
    /// A payload JSON file, or - for stdin.
    pub file: Option<String>,
    /// Framework for agent.run.
    #[arg(long)]
    pub framework: Option<String>,
    /// Instruction for agent.run.
    #[arg(long)]
    pub instruction: Option<String>,
    /// Command line for command.run.
    #[arg(long)]
    pub command: Option<String>,
    /// Print events and live text (task.delta) as NDJSON, then the answer (ok, output, error,
    /// errorCode…, as result.json holds it) as the last line.
    #[arg(long)]
    pub json: bool,
    /// Session id: the conversation carries on from earlier runs of the same session.
    #[arg(long)]
    pub session: Option<String>,
    /// Answer the question(s) a run of --session asked (input.resume), as JSON: true, false,
    /// {"approved": false, "message": "why"}, or {"<id>": answer, …} for several. On a
    /// terminal a run that asks prompts for its answers instead.
    #[arg(long, value_name = "JSON")]
    pub resume: Option<String>,
}

/// Builds the payload from a file (or stdin) and the flags; flags win over the file.
pub fn build_payload(args: &RunArgs) -> anyhow::Result<Payload> {
    if args.file.is_none()
        && args.resume.is_none()
        && args.instruction.is_none()
        && args.command.is_none()
        && args.framework.is_none()
    {
        anyhow::bail!(
            "nothing to run: give --instruction TEXT (agent.run), --command LINE (command.run), \
             or a payload file (- for stdin); see --help"
        );
    }
    let mut value = match args.file.as_deref() {
        None => Value::Object(Default::default()),
        Some(file) => {
            let mut text = String::new();
            if file == "-" {
                std::io::stdin().read_to_string(&mut text)?;
            } else {
                text = std::fs::read_to_string(file)
                    .map_err(|e| anyhow::anyhow!("cannot read payload file {file}: {e}"))?;
            }
            serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("payload {file} is not valid JSON: {e}"))?
        }
    };
    let obj = value
        .as_object_mut()
        .ok_or_else(|| anyhow::anyhow!("the payload must be a JSON object"))?;
    let input = obj
        .entry("input")
        .or_insert_with(|| Value::Object(Default::default()));
    if let Some(input) = input.as_object_mut() {
        if let Some(f) = &args.framework {
            input.insert("framework".into(), Value::String(f.clone()));
        }
        if let Some(i) = &args.instruction {
            input.insert("instruction".into(), Value::String(i.clone()));
        }
        if let Some(c) = &args.command {
            input.insert("command".into(), Value::String(c.clone()));
        }
        if let Some(r) = &args.resume {
            if args.session.is_none() {
                anyhow::bail!(
                    "--resume answers a question asked in a session: give --session (the input_required answer names it)"
                );
            }
            let answer: Value = serde_json::from_str(r).map_err(|e| {
                anyhow::anyhow!(
                    "--resume takes JSON (true, false, {{\"approved\": false, \"message\": \"why\"}}, or {{\"<id>\": answer}}): {e}"
                )
            })?;
            input.insert("resume".into(), answer);
        }
    }
    if args.command.is_some() {
        obj.insert("taskType".into(), Value::String("command.run".into()));
    }
    if let Some(s) = &args.session {
        obj.insert("sessionId".into(), Value::String(s.clone()));
    }
    let payload = payload_from_value(value).map_err(|e| anyhow::anyhow!("{e}"))?;
    if !matches!(payload.task_type, TaskType::AgentRun | TaskType::CommandRun) {
        anyhow::bail!(
            "run takes agent.run or command.run payloads, not {}",
            payload.task_type.as_str()
        );
    }
    Ok(payload)
}

#[derive(serde::Deserialize)]
struct Shown {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    payload: Option<Value>,
}

/// One event in words, for a person.
fn describe(e: &Shown, started: Instant) -> String {
    let t = started.elapsed().as_secs_f64();
    let kind = e.kind.strip_prefix("task.").unwrap_or(&e.kind);
    let mut line = format!("{t:>7.2}s {kind:<9}");
    if let Some(m) = &e.message {
        line.push(' ');
        line.push_str(m);
    }
    match &e.payload {
        Some(Value::Object(o))
            if kind == "log" && o.get("stream").and_then(Value::as_str) == Some("stderr") =>
        {
            line.push_str("  (stderr)");
        }
        Some(_) if kind == "log" => {}
        Some(p) if kind != "result" => {
            line.push_str("  ");
            line.push_str(&p.to_string());
        }
        _ => {}
    }
    line
}

/// Shows one event: as it is (`--json`), or in words, after ending a line of live text.
fn show_event(
    out: &mut impl Write,
    e: &crate::wire::EventJson,
    json: bool,
    spinner: &Option<indicatif::ProgressBar>,
    open: &mut Option<(String, &'static str)>,
    started: Instant,
) -> std::io::Result<()> {
    if json {
        return writeln!(out, "{}", e.get());
    }
    let Ok(ev) = serde_json::from_str::<Shown>(e.get()) else {
        return Ok(());
    };
    if open.take().is_some() {
        writeln!(out)?;
    }
    let line = describe(&ev, started);
    match spinner {
        Some(s) => {
            s.println(line);
            Ok(())
        }
        None => writeln!(out, "{line}"),
    }
}

/// Runs one payload to its end, showing events and live text as they happen; returns the
/// result.
pub async fn run(worker: Arc<Worker>, payload: Payload, json: bool) -> anyhow::Result<TaskResult> {
    let task = match worker.start(payload, RequestIds::new(None, None)).await {
        Start::New(t) | Start::Existing(t) => t,
        Start::OnDisk(r) | Start::Refused(r) => return Ok(*r),
    };
    let started = Instant::now();
    let tty = !json && std::io::stderr().is_terminal();
    let spinner = tty.then(|| {
        let s = indicatif::ProgressBar::new_spinner();
        s.enable_steady_tick(Duration::from_millis(100));
        s.set_message(format!("task {}", task.id));
        s
    });
    let mut changes = task.events.subscribe();
    let live = task.events.live();
    let mut shown = 0u64;
    let mut out = std::io::stdout().lock();
    let mut spinner = spinner;
    // The message whose text is being printed, on a line not ended yet.
    let mut open: Option<(String, &'static str)> = None;
    loop {
        changes.borrow_and_update();
        for d in live.take() {
            // The events recorded before a piece are shown before it.
            while shown < d.after_seq {
                let since = task.events.since(shown, 1 << 20);
                if since.events.is_empty() {
                    break;
                }
                for e in since.events.iter().take((d.after_seq - shown) as usize) {
                    shown += 1;
                    show_event(&mut out, e, json, &spinner, &mut open, started)?;
                }
            }
            if json {
                writeln!(out, "{}", d.to_json(&task.id))?;
                continue;
            }
            // Text is printed as it comes, on lines of its own: a spinner would redraw over it.
            if let Some(s) = spinner.take() {
                s.finish_and_clear();
            }
            let tag = match d.kind {
                crate::live::Kind::Text => "text",
                crate::live::Kind::Reasoning => "reasoning",
                crate::live::Kind::ToolCall { .. } => "tool args",
            };
            if open
                .as_ref()
                .is_none_or(|(id, t)| *id != d.message_id || *t != tag)
            {
                if open.is_some() {
                    writeln!(out)?;
                }
                let t = started.elapsed().as_secs_f64();
                write!(out, "{t:>7.2}s {tag:<9} ")?;
                open = Some((d.message_id.clone(), tag));
            }
            write!(out, "{}", d.text)?;
        }
        let since = task.events.since(shown, 1 << 20);
        let done = since.events.is_empty() && task.result().is_some();
        for e in since.events {
            shown += 1;
            show_event(&mut out, &e, json, &spinner, &mut open, started)?;
        }
        out.flush()?;
        if done {
            break;
        }
        if let Some(s) = &spinner {
            s.set_message(format!(
                "task {} running, {:.1}s",
                task.id,
                started.elapsed().as_secs_f64()
            ));
        }
        tokio::select! {
            _ = changes.changed() => {}
            _ = live.ready() => {}
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    let result = task.finished().await;
    Ok(TaskResult::clone(&result))
}

/// Prints the result's summary for a person (the `--json` form prints events only).
pub fn print_summary(result: &TaskResult, framework: Option<&str>) {
    if ask::asks(result) {
        println!("{}", ask::how_to_answer(result, framework));
    } else if result.ok {
        println!(
            "ok: {} in {} ms",
            result.status.as_str(),
            result.duration_ms
        );
    } else {
        println!(
            "failed: {} ({}) in {} ms",
            result.error.as_deref().unwrap_or("unknown error"),
            result.error_code.map_or("-", ErrorCode::as_str),
            result.duration_ms
        );
    }
    if !result.output.is_empty() {
        println!("output:\n{}", result.output);
    }
    for a in &result.artifacts {
        println!("artifact: {}", a.uri);
    }
}

/// The `frameworks` listing.
pub fn list_frameworks(reg: &Registry, cfg: &crate::config::Config) -> String {
    let mut out = String::new();
    for fw in reg.iter() {
        let command = match &fw.launch {
            Launch::Echo => "(built in)".to_string(),
            Launch::Command { argv, .. } => argv.join(" "),
        };
        let found = if fw.program_found() {
            ""
        } else {
            "  [program not found]"
        };
        out.push_str(&format!("{:<16} {}{}\n", fw.name, command, found));
        out.push_str(&format!("{:<16}   from {}\n", "", fw.source));
        // A framework nothing names an agent for (a runner in another language, say) shows none.
        if let Some(ep) = fw
            .entrypoint
            .as_ref()
            .filter(|e| e.origin != crate::entrypoints::Origin::Unset)
        {
            out.push_str(&format!(
                "{:<16}   entrypoint {} (from {})\n",
                "",
                ep.shown(),
                ep.origin
            ));
        }
        if fw.launch != Launch::Echo {
            out.push_str(&format!(
                "{:<16}   {}\n",
                "",
                crate::warm::describe(cfg, fw.warm, &fw.name)
            ));
        }
        if let Some(d) = &fw.description {
            out.push_str(&format!("{:<16}   {}\n", "", d));
        }
    }
    for w in &reg.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    out
}

/// `run`'s log lines for a person: `agentdispatch-worker: warning: <message> key=value`.
pub struct HumanLog;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for HumanLog
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let level = match *event.metadata().level() {
            tracing::Level::ERROR => "error",
            tracing::Level::WARN => "warning",
            tracing::Level::INFO => "note",
            _ => "debug",
        };
        write!(writer, "agentdispatch-worker: {level}: ")?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}
