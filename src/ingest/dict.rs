//! Interned identities and channels, readable by the output side while ingest appends.

use std::sync::{Arc, RwLock};

use foldhash::HashMap;

use super::NO_IDENT;
use crate::facts::{ChannelId, Ident, NO_CHANNEL};

/// Names behind interned ids; append-only, shared between ingest and readers.
#[derive(Debug, Default)]
pub struct Dictionary {
    idents: RwLock<Vec<(Box<str>, Box<str>)>>,
    channels: RwLock<Vec<Box<str>>>,
}

impl Dictionary {
    pub fn new() -> Arc<Self> {
        let d = Dictionary::default();
        d.channels
            .write()
            .expect("fresh lock")
            .push("(none)".into());
        Arc::new(d)
    }

    /// `(type, value)` of an interned identity; the value of an erased one is empty.
    pub fn ident(&self, id: Ident) -> Option<(String, String)> {
        let idents = self.idents.read().ok()?;
        idents
            .get(id as usize)
            .map(|(t, v)| (t.to_string(), v.to_string()))
    }

    /// The byte-wise least `type:value` among the given identities, read under one lock and
    /// compared without building each text.
    pub fn least_ident(&self, ids: impl IntoIterator<Item = Ident>) -> Option<String> {
        fn text((t, v): &(Box<str>, Box<str>)) -> impl Iterator<Item = u8> + '_ {
            t.bytes().chain(std::iter::once(b':')).chain(v.bytes())
        }
        let idents = self.idents.read().ok()?;
        let least = ids
            .into_iter()
            .filter_map(|id| idents.get(id as usize))
            .min_by(|a, b| text(a).cmp(text(b)))?;
        Some(format!("{}:{}", least.0, least.1))
    }

    /// Label of an interned channel.
    pub fn channel(&self, id: ChannelId) -> String {
        self.channels
            .read()
            .ok()
            .and_then(|c| c.get(id as usize).map(|s| s.to_string()))
            .unwrap_or_else(|| format!("#{id}"))
    }

    /// Names channel `id` as another process's dictionary did (ids come in order; a gap is
    /// filled with placeholders until its names arrive).
    pub fn name_channel(&self, id: ChannelId, name: &str) {
        let Ok(mut channels) = self.channels.write() else { return };
        let at = id as usize;
        while channels.len() <= at {
            let n = channels.len();
            channels.push(format!("#{n}").into());
        }
        channels[at] = name.into();
    }

    /// Number of channels interned so far, `(none)` included.
    pub fn channel_count(&self) -> usize {
        self.channels.read().map(|v| v.len()).unwrap_or(1)
    }

    /// Number of identities interned so far.
    pub fn ident_count(&self) -> usize {
        self.idents.read().map(|v| v.len()).unwrap_or(0)
    }
}

/// The id of an identity appended after `len` others. Ids are u32 and `NO_IDENT` means none:
/// past 2^32 - 1 identities a new one has no id of its own, and is answered `NO_IDENT` (which
/// ingest leaves out), never another identity's id.
fn next_ident(len: usize) -> Option<Ident> {
    Ident::try_from(len).ok().filter(|&id| id != NO_IDENT)
}

/// The writer's side: maps names to ids and appends new ones to the shared dictionary.
#[derive(Debug)]
pub struct Interner {
    dict: Arc<Dictionary>,
    idents: HashMap<Box<str>, Ident>,
    channels: HashMap<Box<str>, ChannelId>,
    key: String,
}

impl Interner {
    pub fn new(dict: Arc<Dictionary>) -> Self {
        Interner {
            dict,
            idents: HashMap::default(),
            channels: HashMap::default(),
            key: String::new(),
        }
    }

    /// The shared dictionary this interner appends to.
    pub fn dictionary(&self) -> &Dictionary {
        &self.dict
    }

    /// Id of an identity, and whether it is new.
    pub fn ident(&mut self, kind: &str, value: &str) -> (Ident, bool) {
        if let Some(id) = self.lookup(kind, value) {
            return (id, false);
        }
        // `lookup` left the identity's key in `self.key`.
        let mut list = self.dict.idents.write().expect("dictionary lock");
        let Some(id) = next_ident(list.len()) else {
            return (NO_IDENT, false);
        };
        list.push((kind.into(), value.into()));
        self.idents.insert(self.key.as_str().into(), id);
        (id, true)
    }

    /// Appends an identity that was erased before (a checkpoint read back keeps its place).
    pub fn erased(&mut self, kind: &str) -> Ident {
        let mut list = self.dict.idents.write().expect("dictionary lock");
        let Some(id) = next_ident(list.len()) else {
            return NO_IDENT;
        };
        list.push((kind.into(), "".into()));
        id
    }

    /// Erases an identity: its value is forgotten, here and in the shared dictionary, so the
    /// same value seen again is a new identity.
    pub fn forget(&mut self, id: Ident) {
        let mut list = self.dict.idents.write().expect("dictionary lock");
        let Some((kind, value)) = list.get_mut(id as usize) else {
            return;
        };
        self.key.clear();
        self.key.push_str(kind);
        self.key.push('\u{1f}');
        self.key.push_str(value);
        self.idents.remove(self.key.as_str());
        *value = "".into();
    }

    /// Id of an identity if it was ever seen.
    pub fn lookup(&mut self, kind: &str, value: &str) -> Option<Ident> {
        self.key.clear();
        self.key.push_str(kind);
        self.key.push('\u{1f}');
        self.key.push_str(value);
        self.idents.get(self.key.as_str()).copied()
    }

    /// Id of a channel label.
    pub fn channel(&mut self, label: &str) -> ChannelId {
        if let Some(&id) = self.channels.get(label) {
            return id;
        }
        let mut list = self.dict.channels.write().expect("dictionary lock");
        // Past 2^32 labels a new one counts as `(none)`, never as another channel.
        let Ok(id) = ChannelId::try_from(list.len()) else {
            return NO_CHANNEL;
        };
        list.push(label.into());
        self.channels.insert(label.into(), id);
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_ids_stop_short_of_no_ident() {
        assert_eq!(next_ident(0), Some(0));
        assert_eq!(next_ident(NO_IDENT as usize - 1), Some(NO_IDENT - 1));
        assert_eq!(next_ident(NO_IDENT as usize), None);
        assert_eq!(next_ident(usize::MAX), None);
    }
}
