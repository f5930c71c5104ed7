//! Stewards: who may commit in an epoch, and how the list is chosen.
//!
//! The list is elected from the members sorted ascending by
//! `SHA256(epoch (8 bytes BE) || retry_round (4 bytes BE) || member id || group id)`,
//! ties by member id, keeping the first `sn` where `sn` is all members when
//! there are fewer than `sn_min`, else `min(sn_max, members)`. Every member
//! computes it and votes NO on any other list. The list rotates: the epoch
//! steward of epoch `e` is `list[(e - election_epoch) mod len]`, skipping
//! stewards that are gone or barred; the next ones are its backups.

use demls_identity::Address;
use sha2::{Digest, Sha256};

/// The steward list computed for an election initiated in `epoch`.
pub(crate) fn elect(
    epoch: u64,
    retry_round: u32,
    members: &[Address],
    group_id: &[u8],
    sn_min: u16,
    sn_max: u16,
) -> Vec<Address> {
    let mut ranked: Vec<([u8; 32], Address)> = members
        .iter()
        .map(|member| {
            let mut hasher = Sha256::new();
            hasher.update(epoch.to_be_bytes());
            hasher.update(retry_round.to_be_bytes());
            hasher.update(member.as_bytes());
            hasher.update(group_id);
            (hasher.finalize().into(), *member)
        })
        .collect();
    ranked.sort();
    let size = if ranked.len() < usize::from(sn_min) {
        ranked.len()
    } else {
        ranked.len().min(usize::from(sn_max.max(1)))
    };
    ranked
        .into_iter()
        .take(size)
        .map(|(_, member)| member)
        .collect()
}

/// The stewards in commit order for `epoch`: the epoch steward first, then its
/// backups, skipping stewards for which `barred` holds (gone, leaving, or
/// found misbehaving).
pub(crate) fn commit_order(
    stewards: &[Address],
    election_epoch: u64,
    epoch: u64,
    barred: impl Fn(&Address) -> bool,
) -> Vec<Address> {
    if stewards.is_empty() {
        return Vec::new();
    }
    let len = stewards.len() as u64;
    let start = (epoch.saturating_sub(election_epoch) % len) as usize;
    stewards[start..]
        .iter()
        .chain(&stewards[..start])
        .filter(|s| !barred(s))
        .copied()
        .collect()
}

/// Whether `epoch` is the last one the list covers (or later): an election is due.
pub(crate) fn list_used_up(stewards: &[Address], election_epoch: u64, epoch: u64) -> bool {
    // Epochs come from stored MLS state: no arithmetic on them may overflow.
    epoch.saturating_sub(election_epoch).saturating_add(1) >= stewards.len() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(n: u8) -> Vec<Address> {
        (1..=n).map(|i| Address::new([i; 20])).collect()
    }

    #[test]
    fn list_size_follows_the_bounds() {
        assert_eq!(elect(3, 0, &members(2), b"g", 3, 5).len(), 2);
        assert_eq!(elect(3, 0, &members(4), b"g", 3, 5).len(), 4);
        assert_eq!(elect(3, 0, &members(9), b"g", 3, 5).len(), 5);
    }

    #[test]
    fn list_is_deterministic_and_depends_on_every_input() {
        let m = members(9);
        let base = elect(3, 0, &m, b"g", 3, 5);
        let mut shuffled = m.clone();
        shuffled.reverse();
        assert_eq!(elect(3, 0, &shuffled, b"g", 3, 5), base);
        assert_ne!(elect(4, 0, &m, b"g", 3, 5), base);
        assert_ne!(elect(3, 1, &m, b"g", 3, 5), base);
        assert_ne!(elect(3, 0, &m, b"h", 3, 5), base);
    }

    #[test]
    fn known_ordering() {
        // SHA256(epoch 0 || retry 0 || member || "g") sorted, computed independently.
        let m = members(3);
        let mut expected: Vec<(Vec<u8>, Address)> = m
            .iter()
            .map(|a| {
                let mut bytes = vec![0u8; 12];
                bytes.extend_from_slice(a.as_bytes());
                bytes.push(b'g');
                (Sha256::digest(&bytes).to_vec(), *a)
            })
            .collect();
        expected.sort();
        let expected: Vec<Address> = expected.into_iter().map(|(_, a)| a).collect();
        assert_eq!(elect(0, 0, &m, b"g", 1, 3), expected);
    }

    #[test]
    fn rotation_and_skipping() {
        let list = members(3);
        assert_eq!(commit_order(&list, 10, 10, |_| false), list);
        assert_eq!(
            commit_order(&list, 10, 11, |_| false),
            vec![list[1], list[2], list[0]]
        );
        assert_eq!(commit_order(&list, 10, 13, |_| false), list);
        assert_eq!(
            commit_order(&list, 10, 11, |a| *a == list[1]),
            vec![list[2], list[0]]
        );
        assert!(!list_used_up(&list, 10, 11));
        assert!(list_used_up(&list, 10, 12));
        // Epochs from a stored state at the edge of the range do not overflow.
        assert!(list_used_up(&list, 0, u64::MAX));
    }
}
