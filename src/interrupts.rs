//! Interrupts (SPEC §14): a child's `task.interrupt` questions checked, the open questions of a
//! session kept in its folder (so that they outlive the child and the worker), and an
//! `input.resume` matched against them.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The session folder's file of open (or answered) questions. A dot file: the framework's own
/// files beside it are the agent's business, this one the worker's.
pub const OPEN_FILE: &str = ".agentdispatch-interrupts.json";

/// Most questions one `task.interrupt` line may ask.
const MAX_INTERRUPTS: usize = 64;
/// Longest interrupt id (ids are keys a caller sends back).
const MAX_ID_BYTES: usize = 200;
/// Largest open-questions file read back (it is in a folder the child can write).
const MAX_FILE_BYTES: u64 = 4 << 20;

/// The questions a task asked, as kept in its session folder.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Open {
    /// The task that asked.
    pub task_id: String,
    /// Its questions, as the child wrote them (checked by [`parse`]).
    pub interrupts: Vec<Value>,
    /// When it asked (RFC 3339).
    pub asked_at: String,
    /// The framework that asked: the answer runs on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framework: Option<String>,
    /// The task that answered them: set before that task's child starts, so that an answer
    /// is used once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_by: Option<String>,
    /// The task that began a new turn in the session instead of answering: the questions are
    /// given up (an answer after it would continue a conversation that went on without it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_up_by: Option<String>,
}

impl Open {
    /// Whether the questions still wait for an answer.
    pub fn is_open(&self) -> bool {
        self.answered_by.is_none() && self.given_up_by.is_none()
    }
}

/// The questions of a `task.interrupt` line's payload, or what is wrong with them.
pub fn parse(payload: Option<Value>) -> Result<Vec<Value>, String> {
    let Some(Value::Object(mut payload)) = payload else {
        return Err("its payload must be an object with an `interrupts` array".into());
    };
    let Some(Value::Array(items)) = payload.remove("interrupts") else {
        return Err("`payload.interrupts` must be an array".into());
    };
    if items.is_empty() || items.len() > MAX_INTERRUPTS {
        return Err(format!(
            "`payload.interrupts` must hold 1 to {MAX_INTERRUPTS} questions, not {}",
            items.len()
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, item) in items.iter().enumerate() {
        let Value::Object(q) = item else {
            return Err(format!("interrupts[{i}] must be an object"));
        };
        let id = match q.get("id") {
            Some(Value::String(id)) if !id.is_empty() && id.len() <= MAX_ID_BYTES => id,
            _ => {
                return Err(format!(
                    "interrupts[{i}].id must be a non-empty string of at most {MAX_ID_BYTES} bytes"
                ))
            }
        };
        if !seen.insert(id.clone()) {
            return Err(format!("interrupts[{i}].id {id:?} is given twice"));
        }
        match q.get("kind").and_then(Value::as_str) {
            Some("approval" | "input") => {}
            _ => {
                return Err(format!(
                    "interrupts[{i}].kind must be \"approval\" or \"input\""
                ))
            }
        }
    }
    Ok(items)
}

/// Writes `open` into the session folder `dir`, atomically (a half-written file would lose
/// the question).
pub fn save(dir: &Path, open: &Open) -> std::io::Result<()> {
    let tmp = dir.join(format!("{OPEN_FILE}.{}.tmp", std::process::id()));
    let bytes = serde_json::to_vec_pretty(open).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, dir.join(OPEN_FILE))
}

/// The questions kept in the session folder `dir`: `None` when none were ever asked there; an
/// error naming the file when it cannot be read or is not the worker's shape.
pub fn load(dir: &Path) -> Result<Option<Open>, String> {
    use std::io::Read;
    let path = dir.join(OPEN_FILE);
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    if !meta.is_file() || meta.len() > MAX_FILE_BYTES {
        return Err(format!(
            "{} is not a regular file of at most {MAX_FILE_BYTES} bytes",
            path.display()
        ));
    }
    let mut text = String::new();
    std::fs::File::open(&path)
        .and_then(|f| f.take(MAX_FILE_BYTES).read_to_string(&mut text))
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let open: Open =
        serde_json::from_str(&text).map_err(|e| format!("{} is corrupted: {e}", path.display()))?;
    parse(Some(serde_json::json!({"interrupts": open.interrupts})))
        .map_err(|e| format!("{} is corrupted: {e}", path.display()))?;
    Ok(Some(open))
}

/// Why an `input.resume` is refused.
#[derive(Debug, PartialEq)]
pub enum Refusal {
    /// It answers no open question (`interrupt_not_open`).
    NotOpen(String),
    /// Its shape is wrong (`invalid_resume`).
    Invalid(String),
}

fn id_of(q: &Value) -> &str {
    q.get("id").and_then(Value::as_str).unwrap_or("")
}

fn kind_of(q: &Value) -> &str {
    q.get("kind").and_then(Value::as_str).unwrap_or("")
}

/// Every open question's answer, by id, from `resume`: `{"<id>": answer, …}`, or a bare answer
/// when one question is open. Approvals come back as `{"approved": bool, "message"?}`.
pub fn answers(open: &Open, resume: &Value) -> Result<Map<String, Value>, Refusal> {
    let questions = &open.interrupts;
    let ids: Vec<&str> = questions.iter().map(id_of).collect();
    // An object is read as answers by id when it can only be that: several questions, a key
    // that is an open id, or (one approval open) no `approved` key to make it a bare answer.
    let by_id = match resume {
        Value::Object(m) => {
            questions.len() > 1
                || m.keys().any(|k| ids.contains(&k.as_str()))
                || (kind_of(&questions[0]) == "approval" && !m.contains_key("approved"))
        }
        _ => false,
    };
    let given: Map<String, Value> = match (by_id, resume) {
        (true, Value::Object(m)) => m.clone(),
        _ if questions.len() > 1 => {
            return Err(Refusal::Invalid(format!(
                "{} questions are open ({}): input.resume must be an object answering each by id",
                questions.len(),
                ids.join(", ")
            )))
        }
        _ => Map::from_iter([(ids[0].to_string(), resume.clone())]),
    };
    let unknown: Vec<&str> = given
        .keys()
        .map(String::as_str)
        .filter(|k| !ids.contains(k))
        .collect();
    if !unknown.is_empty() {
        let shown: Vec<String> = unknown
            .iter()
            .map(|k| crate::wire::clip(k, 200).to_string())
            .collect();
        return Err(Refusal::NotOpen(format!(
            "input.resume answers {}, which {} not open; the open questions of task {} are: {}",
            shown.join(", "),
            if shown.len() == 1 { "is" } else { "are" },
            open.task_id,
            ids.join(", ")
        )));
    }
    let mut out = Map::new();
    for q in questions {
        let id = id_of(q);
        let Some(answer) = given.get(id) else {
            return Err(Refusal::Invalid(format!(
                "input.resume does not answer the open question {id:?}: every open question needs an answer"
            )));
        };
        let answer = if kind_of(q) == "approval" {
            approval(id, answer)?
        } else {
            answer.clone()
        };
        out.insert(id.to_string(), answer);
    }
    Ok(out)
}

/// An approval's answer in its one shape, `{"approved": bool, "message"?: string}`.
fn approval(id: &str, answer: &Value) -> Result<Value, Refusal> {
    let wrong = || {
        Refusal::Invalid(format!(
            "the answer to approval {id:?} must be true, false or {{\"approved\": bool, \"message\"?: string}}"
        ))
    };
    match answer {
        Value::Bool(b) => Ok(serde_json::json!({ "approved": b })),
        Value::Object(m) => {
            let Some(Value::Bool(_)) = m.get("approved") else {
                return Err(wrong());
            };
            let extra = m.keys().any(|k| k != "approved" && k != "message");
            let message_ok = matches!(m.get("message"), None | Some(Value::String(_)));
            if extra || !message_ok {
                return Err(wrong());
            }
            Ok(answer.clone())
        }
        _ => Err(wrong()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn open(questions: Value) -> Open {
        Open {
            task_id: "t1".into(),
            interrupts: parse(Some(json!({ "interrupts": questions }))).unwrap(),
            asked_at: String::new(),
            framework: None,
            answered_by: None,
            given_up_by: None,
        }
    }

    #[test]
    fn questions_are_checked_and_named_when_wrong() {
        assert!(parse(Some(json!({"interrupts": []}))).is_err());
        let e = parse(Some(json!({"interrupts": [{"id": "a", "kind": "maybe"}]}))).unwrap_err();
        assert!(e.contains("interrupts[0].kind"), "{e}");
        let e = parse(Some(
            json!({"interrupts": [{"id": "a", "kind": "input"}, {"id": "a", "kind": "input"}]}),
        ))
        .unwrap_err();
        assert!(e.contains("given twice"), "{e}");
        assert!(parse(None).is_err());
    }

    #[test]
    fn a_bare_answer_serves_one_question_and_ids_serve_many() {
        let one = open(json!([{"id": "refund", "kind": "approval"}]));
        assert_eq!(
            answers(&one, &json!(true)).unwrap()["refund"],
            json!({"approved": true})
        );
        let msg = json!({"approved": false, "message": "too much"});
        assert_eq!(answers(&one, &msg).unwrap()["refund"], msg);
        assert_eq!(
            answers(&one, &json!({"refund": false})).unwrap()["refund"],
            json!({"approved": false})
        );
        assert!(matches!(
            answers(&one, &json!("yes")),
            Err(Refusal::Invalid(_))
        ));
        assert!(matches!(
            answers(&one, &json!({"other": true})),
            Err(Refusal::NotOpen(_))
        ));
        let two = open(json!([{"id": "a", "kind": "input"}, {"id": "b", "kind": "approval"}]));
        assert!(matches!(
            answers(&two, &json!("x")),
            Err(Refusal::Invalid(_))
        ));
        assert!(matches!(
            answers(&two, &json!({"a": 1})),
            Err(Refusal::Invalid(_))
        ));
        let both = answers(&two, &json!({"a": {"any": "json"}, "b": true})).unwrap();
        assert_eq!(both["a"], json!({"any": "json"}));
        let input = open(json!([{"id": "which", "kind": "input"}]));
        assert_eq!(
            answers(&input, &json!({"account": 2})).unwrap()["which"],
            json!({"account": 2})
        );
    }
}
