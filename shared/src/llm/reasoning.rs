//! What a reasoning model thought before it answered, kept in the fields its provider used,
//! so that it can be shown (as text) and sent back unchanged where a provider needs it to
//! continue a tool loop.
//!
//! Providers name it differently: `reasoning_content` (DeepSeek, xAI, Qwen, older vLLM),
//! `reasoning` (OpenRouter, Groq, Ollama, newer vLLM) and `reasoning_details` (OpenRouter's
//! structured blocks, some signed or encrypted). DeepSeek answers 400 when the
//! `reasoning_content` of a tool-call message is missing from later requests, and OpenRouter
//! documents that `reasoning_details` must come back with the tool calls for some models;
//! both accept their own fields back, so the fields are echoed exactly as received.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A model's reasoning, in its provider's own fields; empty for other models.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reasoning {
    /// DeepSeek's, xAI's and Qwen's field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// OpenRouter's, Groq's and Ollama's field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    /// OpenRouter's structured blocks (`reasoning.text`, `reasoning.summary`,
    /// `reasoning.encrypted`), kept whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_details: Option<Vec<Value>>,
}

impl Reasoning {
    /// Whether the provider sent no reasoning at all.
    pub fn is_empty(&self) -> bool {
        self.reasoning_content.as_deref().is_none_or(str::is_empty)
            && self.reasoning.as_deref().is_none_or(str::is_empty)
            && self.reasoning_details.as_ref().is_none_or(Vec::is_empty)
    }

    /// The readable text. A provider that sends the same thought in two fields (OpenRouter:
    /// `reasoning` and `reasoning_details`) is read from one, so nothing shows twice.
    pub fn text(&self) -> String {
        if let Some(text) = self.reasoning_content.as_deref().filter(|t| !t.is_empty()) {
            return text.to_owned();
        }
        if let Some(text) = self.reasoning.as_deref().filter(|t| !t.is_empty()) {
            return text.to_owned();
        }
        self.reasoning_details
            .iter()
            .flatten()
            .filter_map(readable)
            .collect()
    }

    /// Adds a later piece: a streamed delta, or the next round of the same turn. Text is
    /// appended; a structured block continues the block with its `index` and type, or
    /// begins a new one.
    pub fn extend(&mut self, more: Reasoning) {
        append(&mut self.reasoning_content, more.reasoning_content);
        append(&mut self.reasoning, more.reasoning);
        for block in more.reasoning_details.into_iter().flatten() {
            let details = self.reasoning_details.get_or_insert_with(Vec::new);
            match details.iter_mut().rfind(|b| continues(b, &block)) {
                Some(open) => merge_block(open, block),
                None => details.push(block),
            }
        }
    }

    /// This round's reasoning followed by the next round's: text is kept apart by a blank
    /// line, and structured blocks keep their place after the earlier blocks instead of
    /// continuing them by `index`.
    pub fn then(mut self, mut next: Reasoning) -> Reasoning {
        let blocks = next.reasoning_details.take();
        for (have, more) in [
            (&mut self.reasoning_content, &mut next.reasoning_content),
            (&mut self.reasoning, &mut next.reasoning),
        ] {
            if let (Some(have), Some(more)) = (have.as_mut(), more.as_mut())
                && !have.is_empty()
                && !more.is_empty()
            {
                more.insert_str(0, "\n\n");
            }
        }
        self.extend(next);
        if let Some(blocks) = blocks {
            self.reasoning_details
                .get_or_insert_with(Vec::new)
                .extend(blocks);
        }
        self
    }
}

/// The readable text of one structured block; encrypted blocks have none.
fn readable(block: &Value) -> Option<&str> {
    match block.get("type")?.as_str()? {
        "reasoning.text" => block.get("text")?.as_str(),
        "reasoning.summary" => block.get("summary")?.as_str(),
        _ => None,
    }
}

/// Whether `block` is the next piece of the streamed block `open`.
fn continues(open: &Value, block: &Value) -> bool {
    let index = block.get("index");
    index.is_some() && open.get("index") == index && open.get("type") == block.get("type")
}

/// Appends a block's text fields to `open` and takes its other fields (a signature arrives
/// with the last piece).
fn merge_block(open: &mut Value, block: Value) {
    let (Value::Object(open), Value::Object(block)) = (open, block) else {
        return;
    };
    for (key, value) in block {
        match (key.as_str(), open.get_mut(&key), value) {
            ("text" | "summary" | "data", Some(Value::String(have)), Value::String(more)) => {
                have.push_str(&more)
            }
            (_, _, Value::Null) => {}
            (_, _, value) => {
                open.insert(key, value);
            }
        }
    }
}

fn append(have: &mut Option<String>, more: Option<String>) {
    match (have.as_mut(), more) {
        (Some(have), Some(more)) => have.push_str(&more),
        (None, Some(more)) => *have = Some(more),
        (_, None) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: Value) -> Reasoning {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn each_providers_field_reads_as_text() {
        assert_eq!(
            parse(json!({"reasoning_content": "DeepSeek thinks"})).text(),
            "DeepSeek thinks"
        );
        assert_eq!(
            parse(json!({"reasoning": "Groq thinks"})).text(),
            "Groq thinks"
        );
        let details = parse(json!({"reasoning_details": [
            {"type": "reasoning.summary", "summary": "Sum. "},
            {"type": "reasoning.encrypted", "data": "c2VjcmV0"},
            {"type": "reasoning.text", "text": "Text."}
        ]}));
        assert_eq!(details.text(), "Sum. Text.");
    }

    #[test]
    fn the_same_thought_in_two_fields_reads_once() {
        let both = parse(json!({"reasoning": "once",
            "reasoning_details": [{"type": "reasoning.text", "text": "once"}]}));
        assert_eq!(both.text(), "once");
    }

    #[test]
    fn nulls_and_empty_strings_are_no_reasoning() {
        assert!(parse(json!({"reasoning": null, "reasoning_content": ""})).is_empty());
        assert!(!parse(json!({"reasoning": "x"})).is_empty());
    }

    #[test]
    fn streamed_blocks_continue_by_index_and_take_their_signature_last() {
        let mut reasoning = Reasoning::default();
        for piece in [
            json!({"reasoning": "Let", "reasoning_details": [
                {"type": "reasoning.text", "text": "Let", "index": 0, "format": "anthropic-claude-v1"}]}),
            json!({"reasoning": " me", "reasoning_details": [
                {"type": "reasoning.text", "text": " me", "index": 0, "signature": null}]}),
            json!({"reasoning_details": [
                {"type": "reasoning.text", "text": "", "index": 0, "signature": "sig=="}]}),
        ] {
            reasoning.extend(parse(piece));
        }

        assert_eq!(reasoning.reasoning.as_deref(), Some("Let me"));
        assert_eq!(
            reasoning.reasoning_details.unwrap(),
            [
                json!({"type": "reasoning.text", "text": "Let me", "index": 0,
                "format": "anthropic-claude-v1", "signature": "sig=="})
            ]
        );
    }

    #[test]
    fn a_later_round_keeps_its_blocks_apart() {
        let first = parse(json!({"reasoning_content": "one",
            "reasoning_details": [{"type": "reasoning.text", "text": "a", "index": 0}]}));
        let second = parse(json!({"reasoning_content": "two",
            "reasoning_details": [{"type": "reasoning.text", "text": "b", "index": 0}]}));

        let both = first.then(second);

        assert_eq!(both.reasoning_content.as_deref(), Some("one\n\ntwo"));
        assert_eq!(both.reasoning_details.unwrap().len(), 2);
    }

    #[test]
    fn it_serialises_back_in_the_providers_own_fields_only() {
        let reasoning = parse(json!({"reasoning_content": "r"}));
        assert_eq!(
            serde_json::to_value(&reasoning).unwrap(),
            json!({"reasoning_content": "r"})
        );
    }
}
