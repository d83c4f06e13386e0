//! Providers' own wire formats, replayed byte for byte: a tool turn ("add buy milk") against
//! each provider's answers, streamed and (where a provider's JSON answer has quirks of its
//! own) as one JSON body. Each case checks what a user of the turn sees and keeps: the tool
//! ran once with its arguments, the reply, the streamed chunks, the stored rows, and what
//! went back to the model in the second request (results paired with the provider's call
//! ids, and the reasoning or signature the provider needs to continue its tool loop).
//!
//! The answers live in `providers/<provider>.<tool-call|answer>.<sse|json>`. Each was written
//! for this project in the shape its sources below show for that provider: the field names
//! and their order, the ids, where the finish reason and usage come, comments, empty or
//! missing fields. Our tool, arguments and text stand where the sources had theirs; no file
//! is a copy of a source.

use std::path::Path;

use demo_llm::script::{ScriptedLlm, Step};
use serde_json::{Value, json};

use crate::helpers::TestApp;

/// One provider's recorded tool turn.
struct Recording {
    /// The file name's first part.
    provider: &'static str,
    /// Where its shape comes from.
    sources: &'static [&'static str],
    /// The tool calls of its first answer, as (name, arguments).
    calls: &'static [(&'static str, &'static str)],
    /// The text of its second answer.
    reply: &'static str,
    /// The readable reasoning its first answer streams, if any.
    thought: Option<&'static str>,
    /// What the provider needs back on the assistant's tool-call message to continue.
    passed_back: PassedBack,
}

/// What must come back to the provider with its tool calls in the next request.
enum PassedBack {
    /// Nothing beyond the calls.
    Calls,
    /// DeepSeek's and xAI's `reasoning_content`, as streamed.
    ReasoningContent(&'static str),
    /// OpenRouter's `reasoning_details` blocks, the encrypted one included.
    ReasoningDetails(&'static str),
    /// Gemini's thought signature on the call.
    ThoughtSignature(&'static str),
}

const ADD_MILK: (&str, &str) = ("add_task", r#"{"title":"buy milk"}"#);
const GEMINI_SIGNATURE: &str = "CiQB0e2Kb7xq9Zp3Vd1Yw4sN8mR6tL2uH5jF0cA7eG3iK9oQ1bSfCjkBEXAMPLEsig";

const STREAMED: &[Recording] = &[
    Recording {
        provider: "openai",
        sources: &[
            "https://platform.openai.com/docs/api-reference/chat-streaming/streaming",
            "https://github.com/vercel/ai/tree/main/packages/openai/src/chat/__fixtures__",
        ],
        calls: &[ADD_MILK],
        reply: "I've added \"buy milk\" to your list.",
        thought: None,
        passed_back: PassedBack::Calls,
    },
    Recording {
        provider: "azure",
        sources: &[
            "https://github.com/vercel/ai/blob/main/packages/openai-compatible/src/chat/__fixtures__/azure-text.chunks.txt",
            "https://learn.microsoft.com/azure/ai-foundry/openai/concepts/content-filter",
        ],
        calls: &[ADD_MILK],
        reply: "Done! \"buy milk\" is on your list.",
        thought: None,
        passed_back: PassedBack::Calls,
    },
    Recording {
        provider: "groq",
        sources: &[
            "https://github.com/vercel/ai/blob/main/packages/groq/src/__fixtures__/groq-tool-call.chunks.txt",
            "https://console.groq.com/docs/tool-use",
        ],
        calls: &[ADD_MILK],
        reply: "Added \"buy milk\" for you.",
        thought: None,
        passed_back: PassedBack::Calls,
    },
    Recording {
        provider: "mistral",
        sources: &[
            "https://github.com/vercel/ai/blob/main/packages/mistral/src/__fixtures__/mistral-tool-call.chunks.txt",
            "https://docs.mistral.ai/capabilities/function_calling/",
        ],
        calls: &[("add_task", r#"{"title": "buy milk"}"#)],
        reply: "I've added \"buy milk\". Anything else?",
        thought: None,
        passed_back: PassedBack::Calls,
    },
    Recording {
        provider: "deepseek",
        sources: &[
            "https://github.com/vercel/ai/blob/main/packages/deepseek/src/chat/__fixtures__/deepseek-tool-call.chunks.txt",
            "https://api-docs.deepseek.com/guides/thinking_mode",
        ],
        calls: &[ADD_MILK],
        reply: "Added \"buy milk\" to your tasks.",
        thought: Some("The user wants a task called buy milk. I should call add_task."),
        passed_back: PassedBack::ReasoningContent(
            "The user wants a task called buy milk. I should call add_task.",
        ),
    },
    Recording {
        provider: "xai",
        sources: &[
            "https://github.com/vercel/ai/blob/main/packages/xai/src/__fixtures__/xai-tool-call.chunks.txt",
            "https://docs.x.ai/docs/guides/reasoning",
        ],
        calls: &[ADD_MILK],
        reply: "\"buy milk\" is on your list.",
        thought: Some("Add buy milk as a task."),
        passed_back: PassedBack::ReasoningContent("Add buy milk as a task."),
    },
    Recording {
        provider: "moonshot",
        sources: &[
            "https://github.com/vercel/ai/blob/main/packages/moonshotai/src/__fixtures__/moonshotai-stream-indexless-tool-calls.chunks.txt",
            "https://platform.moonshot.ai/docs/api/tool-use",
        ],
        calls: &[("list_tasks", r#"{"status":"pending"}"#), ADD_MILK],
        reply: "Your list was empty; I added \"buy milk\".",
        thought: None,
        passed_back: PassedBack::Calls,
    },
    Recording {
        provider: "gemini",
        sources: &[
            "https://ai.google.dev/gemini-api/docs/openai",
            "https://ai.google.dev/gemini-api/docs/thought-signatures",
        ],
        calls: &[ADD_MILK],
        reply: "OK, I've added \"buy milk\" to your to-do list.",
        thought: None,
        passed_back: PassedBack::ThoughtSignature(GEMINI_SIGNATURE),
    },
    Recording {
        provider: "openrouter",
        sources: &[
            "https://openrouter.ai/docs/api-reference/streaming",
            "https://openrouter.ai/docs/use-cases/reasoning-tokens",
        ],
        calls: &[ADD_MILK],
        reply: "Added \"buy milk\".",
        thought: Some("Need to add the task."),
        passed_back: PassedBack::ReasoningDetails("gAAAAABpQ7EXAMPLEenc"),
    },
    Recording {
        provider: "ollama",
        sources: &[
            "https://github.com/ollama/ollama/blob/main/docs/openai.md",
            "https://github.com/ollama/ollama/issues/15457",
        ],
        calls: &[("list_tasks", r#"{"status":"all"}"#), ADD_MILK],
        reply: "I added \"buy milk\".",
        thought: None,
        passed_back: PassedBack::Calls,
    },
    Recording {
        provider: "vllm",
        sources: &[
            "https://docs.vllm.ai/en/latest/features/tool_calling.html",
            "https://github.com/vercel/ai/blob/main/packages/openai-compatible/src/chat/__fixtures__/issue-20203-empty-tool-calls.chunks.txt",
        ],
        calls: &[ADD_MILK],
        reply: "Added \"buy milk\".",
        thought: None,
        passed_back: PassedBack::Calls,
    },
    Recording {
        provider: "llamacpp",
        sources: &[
            "https://github.com/ggml-org/llama.cpp/blob/master/tools/server/README.md",
            "https://github.com/ggml-org/llama.cpp/blob/master/docs/function-calling.md",
        ],
        calls: &[ADD_MILK],
        reply: "Done: \"buy milk\" is on your list.",
        thought: None,
        passed_back: PassedBack::Calls,
    },
    Recording {
        provider: "together",
        sources: &[
            "https://docs.together.ai/docs/function-calling",
            "https://docs.together.ai/reference/chat-completions-1",
        ],
        calls: &[ADD_MILK],
        reply: "Added \"buy milk\" to your list.",
        thought: None,
        passed_back: PassedBack::Calls,
    },
];

/// The providers whose whole JSON answers are replayed too (their first call and reply are
/// those of [`STREAMED`] unless said here).
const JSON: &[Recording] = &[
    Recording {
        provider: "openai",
        sources: &["https://platform.openai.com/docs/api-reference/chat/object"],
        calls: &[ADD_MILK],
        reply: "I've added \"buy milk\" to your list.",
        thought: None,
        passed_back: PassedBack::Calls,
    },
    Recording {
        provider: "mistral",
        sources: &[
            "https://github.com/vercel/ai/blob/main/packages/mistral/src/__fixtures__/mistral-tool-call.json",
        ],
        calls: &[("add_task", r#"{"title": "buy milk"}"#)],
        reply: "I've added \"buy milk\". Anything else?",
        thought: None,
        passed_back: PassedBack::Calls,
    },
    Recording {
        provider: "deepseek",
        sources: &["https://api-docs.deepseek.com/guides/thinking_mode"],
        calls: &[ADD_MILK],
        reply: "Added \"buy milk\" to your tasks.",
        thought: None,
        passed_back: PassedBack::ReasoningContent(
            "The user wants a task called buy milk. I should call add_task.",
        ),
    },
    Recording {
        provider: "gemini",
        sources: &["https://ai.google.dev/gemini-api/docs/thought-signatures"],
        calls: &[ADD_MILK],
        reply: "OK, I've added \"buy milk\" to your to-do list.",
        thought: None,
        passed_back: PassedBack::ThoughtSignature(GEMINI_SIGNATURE),
    },
    Recording {
        provider: "ollama",
        sources: &["https://github.com/ollama/ollama/blob/main/docs/openai.md"],
        calls: &[ADD_MILK],
        reply: "I added \"buy milk\".",
        thought: None,
        passed_back: PassedBack::Calls,
    },
];

/// A recorded answer, exactly as stored.
fn recorded(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/api/providers")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A test app whose model answers with `recording`'s two answers in `format`.
async fn replaying(recording: &Recording, format: &str) -> (TestApp, ScriptedLlm) {
    let answer = |kind: &str| {
        let body = recorded(&format!("{}.{kind}.{format}", recording.provider));
        match format {
            "json" => vec![Step::Json(body)],
            _ => vec![Step::Send(body)],
        }
    };
    let (llm, url) = ScriptedLlm::start(vec![answer("tool-call"), answer("answer")]).await;
    (TestApp::spawn_with(&[("LLM_BASE_URL", &url)]).await, llm)
}

/// Checks what the turn left behind and what went back to the model, for any format.
async fn assert_turn_kept(
    recording: &Recording,
    app: &TestApp,
    llm: &ScriptedLlm,
    conversation_id: &str,
) {
    let who = recording.provider;
    assert_eq!(
        app.tasks_of("alice").await,
        [("buy milk".to_owned(), false)],
        "{who}: the task is added once"
    );
    let stored = app.assistant_messages(conversation_id).await;
    assert_eq!(stored.len(), 1, "{who}");
    assert_eq!(stored[0].1, recording.reply, "{who}: the stored reply");
    let stored_calls: Vec<(&str, Value)> = stored[0]
        .2
        .as_array()
        .unwrap()
        .iter()
        .map(|call| (call["name"].as_str().unwrap(), call["arguments"].clone()))
        .collect();
    assert_eq!(
        stored_calls,
        expected_calls(recording),
        "{who}: stored calls"
    );

    let requests = llm.requests();
    assert_eq!(requests.len(), 2, "{who}: one call per answer");
    let messages = requests[1]["messages"].as_array().unwrap();
    let (at, asked) = messages
        .iter()
        .enumerate()
        .find(|(_, m)| m["role"] == "assistant" && m.get("tool_calls").is_some())
        .unwrap_or_else(|| panic!("{who}: the tool calls go back: {messages:?}"));
    let calls = asked["tool_calls"].as_array().unwrap();
    for (i, call) in calls.iter().enumerate() {
        let id = call["id"].as_str().unwrap();
        assert!(!id.is_empty(), "{who}: every call has an id");
        assert_eq!(
            messages[at + 1 + i]["tool_call_id"].as_str(),
            Some(id),
            "{who}: results go back paired with their calls"
        );
    }
    match recording.passed_back {
        PassedBack::Calls => {}
        PassedBack::ReasoningContent(thought) => {
            assert_eq!(asked["reasoning_content"], thought, "{who}");
        }
        PassedBack::ReasoningDetails(encrypted) => {
            let details = asked["reasoning_details"].to_string();
            assert!(details.contains(encrypted), "{who}: {details}");
        }
        PassedBack::ThoughtSignature(signature) => {
            assert_eq!(
                calls[0]["extra_content"]["google"]["thought_signature"], signature,
                "{who}"
            );
        }
    }
}

fn expected_calls(recording: &Recording) -> Vec<(&'static str, Value)> {
    recording
        .calls
        .iter()
        .map(|(name, arguments)| (*name, serde_json::from_str(arguments).unwrap()))
        .collect()
}

#[tokio::test]
async fn every_providers_streamed_tool_turn_runs_its_tools_once_and_streams_and_stores_the_reply() {
    assert!(STREAMED.len() >= 10, "at least ten providers");
    for recording in STREAMED {
        let who = recording.provider;
        assert!(!recording.sources.is_empty(), "{who}: cite a source");
        let (app, llm) = replaying(recording, "sse").await;

        let streamed = app
            .chat_stream("alice", json!({"message": "add buy milk"}), None)
            .await;

        assert_eq!(streamed.status, 200, "{who}: {}", streamed.raw);
        assert_eq!(
            streamed.types().last(),
            Some(&"finish"),
            "{who}: {}",
            streamed.raw
        );
        assert_eq!(streamed.text(), recording.reply, "{who}: the streamed text");
        let inputs: Vec<(&str, Value)> = streamed
            .of_type("tool-input-available")
            .map(|c| (c["toolName"].as_str().unwrap(), c["input"].clone()))
            .collect();
        assert_eq!(inputs, expected_calls(recording), "{who}: tool inputs");
        assert_eq!(
            streamed.of_type("tool-output-available").count(),
            recording.calls.len(),
            "{who}"
        );
        let reasoning: String = streamed
            .of_type("reasoning-delta")
            .map(|c| c["delta"].as_str().unwrap())
            .collect();
        match recording.thought {
            Some(thought) => assert!(reasoning.starts_with(thought), "{who}: {reasoning}"),
            None => assert_eq!(reasoning, "", "{who}"),
        }
        let conversation = streamed.chunks[0]["messageMetadata"]["conversation_id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_turn_kept(recording, &app, &llm, &conversation).await;
    }
}

#[tokio::test]
async fn every_providers_json_tool_turn_runs_its_tool_once_and_answers_and_stores_the_reply() {
    for recording in JSON {
        let who = recording.provider;
        assert!(!recording.sources.is_empty(), "{who}: cite a source");
        let (app, llm) = replaying(recording, "json").await;

        let answer = app.chat("alice", json!({"message": "add buy milk"})).await;

        assert_eq!(answer.status, 200, "{who}: {:?}", answer.body);
        assert_eq!(answer.body["response"], recording.reply, "{who}");
        let calls: Vec<(&str, Value)> = answer.body["tool_calls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["name"].as_str().unwrap(), c["arguments"].clone()))
            .collect();
        assert_eq!(calls, expected_calls(recording), "{who}");
        let conversation = answer.body["conversation_id"].as_str().unwrap().to_owned();
        assert_turn_kept(recording, &app, &llm, &conversation).await;
    }
}

#[tokio::test]
async fn an_error_openrouter_sends_mid_stream_is_llm_unavailable_without_its_message() {
    // Sources: https://openrouter.ai/docs/api-reference/streaming (errors during streaming).
    let (_llm, url) =
        ScriptedLlm::start(vec![vec![Step::Send(recorded("openrouter.error.sse"))]]).await;
    let app = TestApp::spawn_with(&[("LLM_BASE_URL", &url)]).await;

    let streamed = app
        .chat_stream("alice", json!({"message": "add buy milk"}), None)
        .await;

    let error = streamed.of_type("error").next().expect("an error chunk");
    assert_eq!(error["errorText"], "llm_unavailable");
    assert_eq!(error["status"], 503);
    assert!(
        !streamed.raw.contains("Provider disconnected"),
        "{}",
        streamed.raw
    );
    let conversation = error["conversation_id"].as_str().unwrap();
    let stored = app.messages(conversation).await;
    assert_eq!(
        stored.len(),
        1,
        "the user message is kept, no reply is stored"
    );
}
