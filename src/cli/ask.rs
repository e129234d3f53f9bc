//! `run` and a task that asks (SPEC §14): on a terminal, each question is put to the person and
//! the answer resumes the run at once (again while it asks); otherwise the answer says how to
//! answer later with `--resume`.

use std::io::{BufRead, IsTerminal, Write};

use serde_json::{json, Map, Value};

use crate::wire::{Payload, TaskResult, TaskStatus};

/// Whether questions can be put to a person: stdin and stderr are a terminal, and the output
/// is not `--json` (a program reads that).
pub fn can_prompt(json: bool) -> bool {
    !json && std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// The payload that answers `asked` (an `input_required` result of `earlier`): the same run in
/// the session the answer named, with `input.resume`, under a new task id.
pub fn resume_payload(earlier: &Payload, asked: &TaskResult, answers: Value) -> Payload {
    let mut next = earlier.clone();
    next.task_id = None;
    next.session_id = asked.asked.session_id.clone().or(next.session_id);
    next.input.insert("resume".into(), answers);
    next
}

/// One question in words: `refund-1 (approval): refund {"amount":5}`.
fn describe(q: &Value) -> String {
    let id = q["id"].as_str().unwrap_or("?");
    let kind = q["kind"].as_str().unwrap_or("?");
    let what = match (q.get("tool").and_then(Value::as_str), q.get("args")) {
        (Some(tool), Some(args)) => format!("{tool} {args}"),
        (Some(tool), None) => tool.to_string(),
        _ => q.get("value").map_or_else(String::new, Value::to_string),
    };
    format!("{id} ({kind}): {what}")
}

/// What to print under an `input_required` answer when nobody can be asked here: the
/// questions, and the command that answers them.
pub fn how_to_answer(result: &TaskResult, framework: Option<&str>) -> String {
    let questions = result.asked.interrupts.as_deref().unwrap_or_default();
    let mut out = format!("task {} asks:\n", result.task_id);
    for q in questions {
        out.push_str(&format!("  {}\n", describe(q)));
    }
    let session = result.asked.session_id.as_deref().unwrap_or("<session>");
    let fw = framework.map_or_else(String::new, |f| format!(" --framework {f}"));
    let example = match questions {
        [q] if q["kind"] == "approval" => "true".to_string(),
        [_] => "'\"your answer\"'".to_string(),
        _ => "'{\"<id>\": <answer>, …}'".to_string(),
    };
    out.push_str(&format!(
        "answer with: agentdispatch-worker run{fw} --session {session} --resume {example}\n\
         (an approval: true, false or '{{\"approved\": false, \"message\": \"why\"}}'; several questions: '{{\"<id>\": <answer>, …}}')"
    ));
    out
}

/// Puts each open question of `result` to the person on the terminal; `None` when stdin ends
/// first (nothing is answered).
pub fn prompt(result: &TaskResult) -> std::io::Result<Option<Value>> {
    let questions = result.asked.interrupts.as_deref().unwrap_or_default();
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut err = std::io::stderr().lock();
    let mut answers = Map::new();
    writeln!(err, "task {} asks:", result.task_id)?;
    for q in questions {
        let approval = q["kind"] == "approval";
        let answer = loop {
            write!(err, "  {}\n  ", describe(q))?;
            if approval {
                write!(err, "approve? [y/n, or n <reason>] ")?;
            } else {
                write!(err, "answer (JSON, or text): ")?;
            }
            err.flush()?;
            let Some(line) = lines.next().transpose()? else {
                return Ok(None);
            };
            match parse_answer(approval, line.trim()) {
                Some(a) => break a,
                None => writeln!(err, "  (answer y or n)")?,
            }
        };
        answers.insert(q["id"].as_str().unwrap_or_default().to_string(), answer);
    }
    Ok(Some(Value::Object(answers)))
}

/// A line typed at the prompt as the answer: an approval from `y`/`yes`/`approve` or
/// `n`/`no`/`reject` (a reason may follow), `None` for anything else; an input as JSON when
/// it parses, else as text.
pub fn parse_answer(approval: bool, line: &str) -> Option<Value> {
    if !approval {
        return Some(serde_json::from_str(line).unwrap_or_else(|_| Value::String(line.into())));
    }
    let (word, reason) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    match word.to_ascii_lowercase().as_str() {
        "y" | "yes" | "approve" => Some(json!({"approved": true})),
        "n" | "no" | "reject" => Some(match reason.trim() {
            "" => json!({"approved": false}),
            why => json!({"approved": false, "message": why}),
        }),
        _ => None,
    }
}

/// Whether `result` asks questions a person has to answer.
pub fn asks(result: &TaskResult) -> bool {
    result.status == TaskStatus::InputRequired && result.asked.interrupts.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typed_line_is_the_answer_in_the_worker_shape() {
        assert_eq!(parse_answer(true, "y"), Some(json!({"approved": true})));
        assert_eq!(
            parse_answer(true, "Approve"),
            Some(json!({"approved": true}))
        );
        assert_eq!(parse_answer(true, "n"), Some(json!({"approved": false})));
        assert_eq!(
            parse_answer(true, "no  over the limit"),
            Some(json!({"approved": false, "message": "over the limit"}))
        );
        assert_eq!(parse_answer(true, "maybe"), None);
        assert_eq!(
            parse_answer(false, "{\"account\": 2}"),
            Some(json!({"account": 2}))
        );
        assert_eq!(
            parse_answer(false, "the blue one"),
            Some(json!("the blue one"))
        );
    }
}
