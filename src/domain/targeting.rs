//! Who a campaign is sent to.

use super::SegmentFilter;

/// A campaign's audience, as asked for.
#[derive(Clone, Debug)]
pub enum Targeting {
    All,
    Tag(String),
    Segment(String),
    /// The part of an earlier campaign that was never sent.
    Resume(String),
    /// Contacts matching a filter: given inline, or a dynamic segment's.
    Filter {
        filter: SegmentFilter,
        segment_id: Option<String>,
    },
}

impl Targeting {
    pub fn to_json(&self) -> String {
        match self {
            Self::All => serde_json::json!({}),
            Self::Tag(t) => serde_json::json!({ "tag": t }),
            Self::Segment(s) => serde_json::json!({ "segment_id": s }),
            Self::Resume(c) => serde_json::json!({ "resume_from_campaign_id": c }),
            Self::Filter { filter, segment_id: None } => serde_json::json!({ "filter": filter.source() }),
            Self::Filter { filter, segment_id: Some(s) } => {
                serde_json::json!({ "segment_id": s, "filter": filter.source() })
            }
        }
        .to_string()
    }
}
