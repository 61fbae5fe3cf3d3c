//! Who may talk to the agent, and where (OpenClaw's rules, spec §10.3).
//!
//! Direct messages follow `dmPolicy`: `pairing` (a stranger gets a one-time code and is not
//! processed), `allowlist` (strangers dropped silently), `open`, `disabled`. Groups are checked
//! in OpenClaw's order: the group policy and its allowlist (`groups`, `"*"` for all), then
//! mention gating (`requireMention`, default on), then the sender allowlist inside groups
//! (`groups.<id>.allowFrom`, else `groupAllowFrom`; neither set: anyone in an allowed group).

use hearth_config::{ChannelAccess, DmPolicy, GroupPolicy};

use crate::{ConversationKind, Inbound};

/// What to do with one inbound message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Run the turn and reply.
    Process,
    /// A stranger under `pairing`: offer a code (and nothing else).
    Pair,
    /// Ignore it (nothing is sent back).
    Drop(DropReason),
}

/// Why a message was dropped (for the debug log; never sent anywhere).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    DmDisabled,
    NotAllowed,
    GroupsDisabled,
    GroupNotAllowed,
    NotMentioned,
    SenderNotAllowedInGroup,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::DmDisabled => "direct messages are disabled",
            DropReason::NotAllowed => "sender not in allowFrom",
            DropReason::GroupsDisabled => "groups are disabled",
            DropReason::GroupNotAllowed => "group not in groups",
            DropReason::NotMentioned => "not mentioned",
            DropReason::SenderNotAllowedInGroup => "sender not allowed in the group",
        }
    }
}

fn listed(list: &[String], id: &str) -> bool {
    list.iter().any(|entry| entry == "*" || entry == id)
}

/// Decides about `message`. `approved` says whether pairing approved a sender (the files are
/// read only when the config's lists do not already decide).
pub fn decide(
    access: &ChannelAccess,
    message: &Inbound,
    approved: impl FnOnce(&str) -> bool,
) -> Decision {
    let sender = message.sender.id.as_str();
    match message.conversation.kind {
        ConversationKind::Direct => match access.dm_policy {
            DmPolicy::Disabled => Decision::Drop(DropReason::DmDisabled),
            DmPolicy::Open => Decision::Process,
            DmPolicy::Allowlist | DmPolicy::Pairing => {
                if listed(&access.allow_from, sender) || approved(sender) {
                    Decision::Process
                } else if access.dm_policy == DmPolicy::Pairing {
                    Decision::Pair
                } else {
                    Decision::Drop(DropReason::NotAllowed)
                }
            }
        },
        ConversationKind::Group => {
            let group = message.conversation.id.as_str();
            let rule = access.groups.get(group).or_else(|| access.groups.get("*"));
            match access.group_policy {
                GroupPolicy::Disabled => return Decision::Drop(DropReason::GroupsDisabled),
                GroupPolicy::Allowlist if rule.is_none() => {
                    return Decision::Drop(DropReason::GroupNotAllowed);
                }
                GroupPolicy::Allowlist | GroupPolicy::Open => {}
            }
            if rule.is_none_or(|r| r.require_mention) && !message.mentioned {
                return Decision::Drop(DropReason::NotMentioned);
            }
            let own = rule.map(|r| r.allow_from.as_slice()).unwrap_or_default();
            let senders = if own.is_empty() { access.group_allow_from.as_slice() } else { own };
            if senders.is_empty() || listed(senders, sender) {
                Decision::Process
            } else {
                Decision::Drop(DropReason::SenderNotAllowedInGroup)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Conversation, Sender};
    use hearth_config::GroupRule;
    use std::time::SystemTime;

    fn message(
        kind: ConversationKind,
        conversation: &str,
        sender: &str,
        mentioned: bool,
    ) -> Inbound {
        Inbound {
            id: "m1".into(),
            conversation: Conversation { kind, id: conversation.into() },
            sender: Sender { id: sender.into(), name: None },
            text: "hi".into(),
            mentioned,
            received_at: SystemTime::now(),
        }
    }

    fn dm(sender: &str) -> Inbound {
        message(ConversationKind::Direct, sender, sender, false)
    }

    fn access(dm_policy: DmPolicy, allow_from: &[&str]) -> ChannelAccess {
        ChannelAccess {
            dm_policy,
            allow_from: allow_from.iter().map(|s| (*s).to_owned()).collect(),
            ..ChannelAccess::default()
        }
    }

    #[test]
    fn direct_messages_follow_the_dm_policy() {
        let pairing = access(DmPolicy::Pairing, &["alice"]);
        assert_eq!(decide(&pairing, &dm("alice"), |_| false), Decision::Process);
        assert_eq!(decide(&pairing, &dm("bob"), |_| false), Decision::Pair);
        assert_eq!(decide(&pairing, &dm("bob"), |s| s == "bob"), Decision::Process);
        let allowlist = access(DmPolicy::Allowlist, &["alice"]);
        assert_eq!(
            decide(&allowlist, &dm("bob"), |_| false),
            Decision::Drop(DropReason::NotAllowed)
        );
        assert_eq!(
            decide(&allowlist, &dm("bob"), |_| true),
            Decision::Process,
            "approved by pairing earlier"
        );
        assert_eq!(decide(&access(DmPolicy::Open, &["*"]), &dm("x"), |_| false), Decision::Process);
        assert_eq!(
            decide(&access(DmPolicy::Disabled, &["alice"]), &dm("alice"), |_| true),
            Decision::Drop(DropReason::DmDisabled)
        );
    }

    #[test]
    fn groups_check_the_allowlist_then_the_mention_then_the_sender() {
        let rule = |mention: bool, from: &[&str]| GroupRule {
            require_mention: mention,
            allow_from: from.iter().map(|s| (*s).to_owned()).collect(),
        };
        let mut a = access(DmPolicy::Pairing, &[]);
        let group = |id: &str, sender: &str, mentioned: bool| {
            message(ConversationKind::Group, id, sender, mentioned)
        };
        // allowlist with no groups: nothing.
        assert_eq!(
            decide(&a, &group("g1", "x", true), |_| true),
            Decision::Drop(DropReason::GroupNotAllowed)
        );
        a.groups.insert("g1".into(), rule(true, &[]));
        assert_eq!(
            decide(&a, &group("g1", "x", false), |_| true),
            Decision::Drop(DropReason::NotMentioned)
        );
        assert_eq!(decide(&a, &group("g1", "x", true), |_| false), Decision::Process);
        assert_eq!(
            decide(&a, &group("g2", "x", true), |_| true),
            Decision::Drop(DropReason::GroupNotAllowed)
        );
        // groupAllowFrom narrows the senders; a group's own allowFrom wins over it.
        a.group_allow_from = vec!["alice".into()];
        assert_eq!(
            decide(&a, &group("g1", "x", true), |_| true),
            Decision::Drop(DropReason::SenderNotAllowedInGroup)
        );
        assert_eq!(decide(&a, &group("g1", "alice", true), |_| false), Decision::Process);
        a.groups.insert("g1".into(), rule(false, &["bob"]));
        assert_eq!(decide(&a, &group("g1", "bob", false), |_| false), Decision::Process);
        assert_eq!(
            decide(&a, &group("g1", "alice", true), |_| false),
            Decision::Drop(DropReason::SenderNotAllowedInGroup)
        );
        // open: any group, mention still required by default.
        let mut open = access(DmPolicy::Pairing, &[]);
        open.group_policy = GroupPolicy::Open;
        assert_eq!(
            decide(&open, &group("g9", "x", false), |_| true),
            Decision::Drop(DropReason::NotMentioned)
        );
        assert_eq!(decide(&open, &group("g9", "x", true), |_| false), Decision::Process);
        // "*" lists every group.
        let mut star = access(DmPolicy::Pairing, &[]);
        star.groups.insert("*".into(), rule(false, &[]));
        assert_eq!(decide(&star, &group("any", "x", false), |_| false), Decision::Process);
        star.group_policy = GroupPolicy::Disabled;
        assert_eq!(
            decide(&star, &group("any", "x", true), |_| true),
            Decision::Drop(DropReason::GroupsDisabled)
        );
    }
}
