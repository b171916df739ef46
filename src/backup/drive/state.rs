//! What a drive backup stores with its recovery point to continue incrementally: per drive, the
//! `root/delta` link and where the drive's item manifest is in the archive. The items themselves
//! (ids, names, parents, hashes) are in that manifest, inside the recovery point, so the state
//! stays small however large the drive is.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

const VERSION: u32 = 1;

/// One drive's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriveState {
    /// The link the next round resumes from; `None` enumerates the drive in full.
    pub delta_link: Option<String>,
    /// Archive path of the manifest written with the point (the item tree the link continues).
    pub manifest: String,
}

/// The state of every drive of one archive, by drive id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrivesState {
    pub version: u32,
    pub drives: BTreeMap<String, DriveState>,
}

impl DrivesState {
    /// The state stored with the parent point, or an empty one (everything enumerated in full)
    /// when there is none or it cannot be read.
    pub fn restore(stored: Option<&str>) -> Self {
        stored
            .and_then(|text| serde_json::from_str::<DrivesState>(text).ok())
            .filter(|state| state.version == VERSION)
            .unwrap_or(Self {
                version: VERSION,
                drives: BTreeMap::new(),
            })
    }

    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_foreign_text_starts_afresh() {
        let mut state = DrivesState::restore(None);
        state.drives.insert(
            "b!1".into(),
            DriveState {
                delta_link: Some("https://graph/x?token=1".into()),
                manifest: "drive-items.jsonl".into(),
            },
        );
        assert_eq!(DrivesState::restore(Some(&state.to_text())), state);
        assert!(
            DrivesState::restore(Some("{\"folders\":{}}"))
                .drives
                .is_empty()
        );
        assert!(DrivesState::restore(Some("not json")).drives.is_empty());
    }
}
