//! Where the delivery worker sends messages: Slack, or the console when no
//! bot token is set.

use std::{
    io::Write,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use serde_json::Value;

use super::api::{Posted, SlackClient, SlackError};
use crate::slack::blocks::Message;

#[derive(Debug, Clone)]
pub enum Transport {
    Slack(SlackClient),
    Console(Console),
}

impl Transport {
    pub async fn post(
        &self,
        channel: &str,
        thread_ts: Option<&str>,
        message: &Message,
        outbox_id: Option<i64>,
    ) -> Result<Posted, SlackError> {
        match self {
            Self::Slack(c) => c.post_message(channel, thread_ts, message, outbox_id).await,
            Self::Console(c) => Ok(c.print(
                channel,
                thread_ts.map(|t| format!("reply in thread {t}")),
                message,
            )),
        }
    }

    pub async fn update(
        &self,
        channel: &str,
        ts: &str,
        message: &Message,
    ) -> Result<(), SlackError> {
        match self {
            Self::Slack(c) => c.update_message(channel, ts, message).await,
            Self::Console(c) => {
                c.print(channel, Some(format!("update of {ts}")), message);
                Ok(())
            }
        }
    }

    /// See [`SlackClient::find_outbox_message`]. The console keeps no history,
    /// so an interrupted print is printed again.
    pub async fn find_outbox_message(
        &self,
        channel: &str,
        thread_ts: Option<&str>,
        oldest: &str,
        outbox_id: i64,
    ) -> Result<Option<Posted>, SlackError> {
        match self {
            Self::Slack(c) => {
                c.find_outbox_message(channel, thread_ts, oldest, outbox_id)
                    .await
            }
            Self::Console(_) => Ok(None),
        }
    }
}

/// Prints messages instead of posting them (console mode).
#[derive(Clone)]
pub struct Console {
    out: Arc<Mutex<Box<dyn Write + Send>>>,
    seq: Arc<AtomicU64>,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Console")
    }
}

impl Console {
    pub fn stdout() -> Self {
        Self::to_writer(Box::new(std::io::stdout()))
    }

    pub fn to_writer(out: Box<dyn Write + Send>) -> Self {
        Self {
            out: Arc::new(Mutex::new(out)),
            seq: Arc::new(AtomicU64::new(0)),
        }
    }

    fn print(&self, channel: &str, note: Option<String>, message: &Message) -> Posted {
        let n = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let ts = format!("{}.{n:06}", chrono::Utc::now().timestamp());
        let mut text = format!("── armbot → {channel}");
        if let Some(note) = note {
            text.push_str(&format!(" ({note})"));
        }
        text.push_str(&format!(" ts={ts} ──\n"));
        let lines = block_texts(&message.blocks);
        if lines.is_empty() {
            text.push_str(&message.text);
            text.push('\n');
        }
        for l in lines {
            text.push_str(&l);
            text.push('\n');
        }
        // A poisoned lock only means an earlier print panicked; keep printing.
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
        Posted {
            channel: channel.to_string(),
            ts,
        }
    }
}

/// The readable text of Block Kit blocks, for the console.
fn block_texts(blocks: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    for b in blocks {
        if let Some(t) = b["text"]["text"].as_str() {
            out.push(t.to_string());
        }
        for key in ["fields", "elements"] {
            if let Some(items) = b[key].as_array() {
                let texts: Vec<&str> = items.iter().filter_map(|f| f["text"].as_str()).collect();
                if !texts.is_empty() {
                    out.push(texts.join("  |  ").replace('\n', " "));
                }
            }
        }
    }
    out
}
