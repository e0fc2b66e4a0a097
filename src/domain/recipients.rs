//! Who gets a notice about one outage step: the product's rule 5 as a pure function.
//!
//! - Every affected facility's registered mobile and verified e-mail get it.
//! - A facility with a registered mobile gets no SMS to directory numbers: the household
//!   chose its number, and that choice replaces the directory.
//! - A facility without one gets an SMS to each mobile the directory lists at its address.
//! - One person gets one notice per step and channel, however many facilities or sources
//!   lead to them; the notice can say how many of the facilities they registered are
//!   affected (a directory number hears of its address, not of a count).
//!
//! The store applies this rule in SQL at storm scale (`store/fanout.rs`); this function is
//! the rule as written, and `tests/rule_model.rs` checks the database against it.

use std::collections::HashMap;

use crate::domain::email::Email;
use crate::domain::language::Language;
use crate::domain::phone::PhoneNumber;

/// An address as the telecom directory knows it: street, number and postcode, without
/// entrance or apartment (directories rarely have them), case and spacing folded.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AddressKey(String);

impl AddressKey {
    pub fn new(street: &str, house_number: &str, postcode: &str) -> Self {
        let fold = |s: &str| {
            s.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_lowercase()
        };
        let postcode: String = postcode.chars().filter(|c| !c.is_whitespace()).collect();
        Self(format!(
            "{}|{}|{postcode}",
            fold(street),
            fold(house_number)
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One affected facility with what the household registered (e-mail only when verified).
#[derive(Debug, Clone)]
pub struct AffectedFacility {
    pub facility_id: i64,
    pub address: AddressKey,
    pub language: Language,
    pub phone: Option<PhoneNumber>,
    pub verified_email: Option<Email>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    Sms,
    Email,
}

impl Channel {
    pub const ALL: [Channel; 2] = [Channel::Sms, Channel::Email];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Email => "email",
        }
    }
}

/// Where a recipient's address came from; registered wins when both lead to one person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    Registered,
    Directory,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub channel: Channel,
    /// E.164 number or normalised (lower-case) e-mail: the dedupe key.
    pub address: String,
    pub source: Source,
    /// Language of the first facility (lowest id) that leads to this person.
    pub language: Language,
    /// How many affected facilities this person registered (0: reached through the
    /// directory only).
    pub facilities: u32,
}

/// The recipients of one step, each once, in a stable order (first facility first).
pub fn recipients(
    affected: &[AffectedFacility],
    directory: &HashMap<AddressKey, Vec<PhoneNumber>>,
) -> Vec<Recipient> {
    let mut order: Vec<Recipient> = Vec::new();
    let mut index: HashMap<(Channel, String), usize> = HashMap::with_capacity(affected.len());
    let mut add = |channel: Channel, address: String, source: Source, f: &AffectedFacility| {
        let registered = u32::from(source == Source::Registered);
        match index.get(&(channel, address.clone())) {
            Some(i) => {
                let r = &mut order[*i];
                r.facilities += registered;
                r.source = r.source.min(source);
            }
            None => {
                index.insert((channel, address.clone()), order.len());
                order.push(Recipient {
                    channel,
                    address,
                    source,
                    language: f.language,
                    facilities: registered,
                });
            }
        }
    };
    let mut sorted: Vec<&AffectedFacility> = affected.iter().collect();
    sorted.sort_by_key(|f| f.facility_id);
    sorted.dedup_by_key(|f| f.facility_id);
    for f in sorted {
        match &f.phone {
            Some(p) => add(Channel::Sms, p.e164().to_string(), Source::Registered, f),
            None => {
                for p in directory.get(&f.address).into_iter().flatten() {
                    add(Channel::Sms, p.e164().to_string(), Source::Directory, f);
                }
            }
        }
        if let Some(e) = &f.verified_email {
            add(Channel::Email, e.normalized(), Source::Registered, f);
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::phone::Region;
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn phone(n: u32) -> PhoneNumber {
        PhoneNumber::parse(&format!("070{n:07}"), Region::Se).unwrap()
    }

    fn facility(id: i64, addr: u8, phone_n: Option<u32>, email: Option<&str>) -> AffectedFacility {
        AffectedFacility {
            facility_id: id,
            address: AddressKey::new("Storgatan", &addr.to_string(), "12345"),
            language: Language::Sv,
            phone: phone_n.map(phone),
            verified_email: email.map(|e| Email::parse(e).unwrap()),
        }
    }

    #[test]
    fn a_registered_phone_replaces_the_directory_for_its_facility() {
        let dir = HashMap::from([(
            AddressKey::new("Storgatan", "1", "123 45"),
            vec![phone(9), phone(8)],
        )]);
        let r = recipients(&[facility(1, 1, Some(1), None)], &dir);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].address, "+46700000001");
        assert_eq!(r[0].source, Source::Registered);
    }

    #[test]
    fn a_facility_without_a_phone_reaches_every_directory_number_at_its_address() {
        let dir = HashMap::from([(
            AddressKey::new(" storgatan ", "1", "12345"),
            vec![phone(9), phone(8)],
        )]);
        let r = recipients(&[facility(1, 1, None, Some("a@example.com"))], &dir);
        let sms: Vec<_> = r
            .iter()
            .filter(|r| r.channel == Channel::Sms)
            .map(|r| r.address.as_str())
            .collect();
        assert_eq!(sms, vec!["+46700000009", "+46700000008"]);
        assert!(
            r.iter()
                .all(|r| r.channel == Channel::Email || r.source == Source::Directory)
        );
        assert_eq!(r.iter().filter(|r| r.channel == Channel::Email).count(), 1);
    }

    #[test]
    fn one_person_gets_one_notice_naming_how_many_facilities() {
        // The same number registered for two facilities, and listed in the directory at a
        // third facility's address: one SMS, counted as registered, naming the two
        // facilities the person registered.
        let dir = HashMap::from([(AddressKey::new("Storgatan", "3", "12345"), vec![phone(1)])]);
        let r = recipients(
            &[
                facility(1, 1, Some(1), Some("A@Example.com")),
                facility(2, 2, Some(1), Some("a@example.com")),
                facility(3, 3, None, None),
            ],
            &dir,
        );
        assert_eq!(r.len(), 2);
        assert_eq!(
            (r[0].channel, r[0].facilities, r[0].source),
            (Channel::Sms, 2, Source::Registered)
        );
        assert_eq!(
            (r[1].channel, r[1].facilities, r[1].address.as_str()),
            (Channel::Email, 2, "a@example.com")
        );
    }

    #[test]
    fn the_same_facility_twice_counts_once() {
        let f = facility(1, 1, Some(1), None);
        let r = recipients(&[f.clone(), f], &HashMap::new());
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].facilities, 1);
    }

    fn arb_case()
    -> impl Strategy<Value = (Vec<AffectedFacility>, HashMap<AddressKey, Vec<PhoneNumber>>)> {
        let fac = (
            1i64..40,
            0u8..6,
            proptest::option::of(0u32..12),
            proptest::option::of(0u8..5),
        );
        let dir =
            proptest::collection::hash_map(0u8..6, proptest::collection::vec(0u32..12, 0..4), 0..6);
        (proptest::collection::vec(fac, 0..40), dir).prop_map(|(fs, d)| {
            // Facility ids are unique in the store; the rule may rely on that.
            let mut ids = HashSet::new();
            let fs = fs
                .into_iter()
                .filter(|(id, ..)| ids.insert(*id))
                .map(|(id, addr, p, e)| {
                    let email = e.map(|e| format!("p{e}@example.com"));
                    facility(id, addr, p, email.as_deref())
                })
                .collect();
            let d = d
                .into_iter()
                .map(|(addr, ps)| {
                    (
                        AddressKey::new("Storgatan", &addr.to_string(), "12345"),
                        ps.into_iter().map(phone).collect(),
                    )
                })
                .collect();
            (fs, d)
        })
    }

    proptest! {
        #[test]
        fn rule_five_holds((affected, dir) in arb_case()) {
            let r = recipients(&affected, &dir);
            // Nobody twice on one channel.
            let keys: HashSet<_> = r.iter().map(|x| (x.channel, x.address.clone())).collect();
            prop_assert_eq!(keys.len(), r.len());
            let sms: HashSet<&str> = r.iter().filter(|x| x.channel == Channel::Sms).map(|x| x.address.as_str()).collect();
            let email: HashSet<&str> = r.iter().filter(|x| x.channel == Channel::Email).map(|x| x.address.as_str()).collect();
            // Every registered phone and verified e-mail is reached.
            for f in &affected {
                if let Some(p) = &f.phone { prop_assert!(sms.contains(p.e164())); }
                if let Some(e) = &f.verified_email { prop_assert!(email.contains(e.normalized().as_str())); }
            }
            // Every SMS goes to a registered phone, or to a directory number at the address of
            // an affected facility that has no registered phone.
            for x in r.iter().filter(|x| x.channel == Channel::Sms) {
                let registered = affected.iter().any(|f| f.phone.as_ref().is_some_and(|p| p.e164() == x.address));
                let via_directory = affected.iter().any(|f| f.phone.is_none()
                    && dir.get(&f.address).is_some_and(|ps| ps.iter().any(|p| p.e164() == x.address)));
                prop_assert!(registered || via_directory);
                prop_assert_eq!(x.source == Source::Registered, registered);
            }
            // Every directory number of a facility without a phone is reached.
            for f in affected.iter().filter(|f| f.phone.is_none()) {
                for p in dir.get(&f.address).into_iter().flatten() {
                    prop_assert!(sms.contains(p.e164()));
                }
            }
            // The count is exactly the affected facilities that registered this address.
            for x in &r {
                let registered = affected.iter().filter(|f| match x.channel {
                    Channel::Sms => f.phone.as_ref().is_some_and(|p| p.e164() == x.address),
                    Channel::Email => f.verified_email.as_ref().is_some_and(|e| e.normalized() == x.address),
                }).count();
                prop_assert_eq!(x.facilities as usize, registered);
            }
        }
    }
}
