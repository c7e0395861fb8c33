//! Community resources: named community values, unique names across all of them.

use super::{Ctx, Obj, kinds};
use crate::community::parse_community;
use crate::model::CommunityValue;
use std::collections::BTreeMap;

/// Named values, by name. A name defined twice keeps its first definition (and is an error).
pub fn build(ctx: &mut Ctx, inputs: &[ferrolb_api::Community]) -> BTreeMap<String, CommunityValue> {
    let objs: Vec<Obj<'_>> = inputs
        .iter()
        .map(|c| Obj::new(kinds::COMMUNITY, &c.metadata))
        .collect();
    ctx.check_names(&objs, false, "names must be unique within a namespace");
    let mut named: BTreeMap<String, CommunityValue> = BTreeMap::new();
    // Where each name was first defined, to point at it from a duplicate.
    let mut defined_at: BTreeMap<String, String> = BTreeMap::new();
    for (input, obj) in inputs.iter().zip(&objs) {
        for (i, alias) in input.spec.communities.iter().enumerate() {
            let at = format!("spec.communities[{i}]");
            // MetalLB accepts any name and looks names up before parsing a value, so these
            // are warnings: the entry works, but is easy to misread.
            if alias.name.is_empty() {
                ctx.warn(
                    obj,
                    &format!("{at}.name"),
                    "is empty, so no advertisement can refer to this value by name",
                );
            } else if alias.name.contains(':') {
                ctx.warn(
                    obj,
                    &format!("{at}.name"),
                    format!(
                        "{:?} contains ':', so it reads like a community value; advertisements \
                         that list it get this entry's value {:?}, not {:?}",
                        alias.name, alias.value, alias.name
                    ),
                );
            }
            if let Some(first) = defined_at.get(&alias.name) {
                ctx.error(
                    obj,
                    &format!("{at}.name"),
                    format!(
                        "{:?} is already defined in {first}; community names are global and \
                         must be unique",
                        alias.name
                    ),
                );
            }
            match parse_community(&alias.value) {
                Ok(v) => {
                    if !defined_at.contains_key(&alias.name) {
                        named.insert(alias.name.clone(), v);
                    }
                }
                Err(message) => ctx.error(obj, &format!("{at}.value"), message),
            }
            defined_at
                .entry(alias.name.clone())
                .or_insert_with(|| format!("{} ({at})", obj.describe()));
        }
    }
    named
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use crate::Inputs;
    use ferrolb_api::{Community, CommunityAlias, CommunitySpec};

    fn community(name: &str, entries: &[(&str, &str)]) -> Community {
        Community {
            metadata: meta(name),
            spec: CommunitySpec {
                communities: entries
                    .iter()
                    .map(|(n, v)| CommunityAlias {
                        name: n.to_string(),
                        value: v.to_string(),
                    })
                    .collect(),
            },
        }
    }

    #[test]
    fn bad_values_and_duplicate_names() {
        let inputs = Inputs {
            communities: vec![
                community("c1", &[("no-export", "65535:65281"), ("bad", "70000:1")]),
                community("c2", &[("no-export", "1:1"), ("big", "large:1:2")]),
            ],
            ..Default::default()
        };
        let lines = lines(&inputs);
        assert_eq!(
            lines,
            vec![
                "Community ferrolb-system/c1: spec.communities[1].value: \"70000:1\" is not a valid \
                 community; expected AA:NN with two numbers 0-65535, or large:A:B:C with three \
                 numbers 0-4294967295",
                "Community ferrolb-system/c2: spec.communities[0].name: \"no-export\" is already \
                 defined in Community ferrolb-system/c1 (spec.communities[0]); community names are \
                 global and must be unique",
                "Community ferrolb-system/c2: spec.communities[1].value: \"large:1:2\" is not a valid \
                 large community; expected AA:NN with two numbers 0-65535, or large:A:B:C with three \
                 numbers 0-4294967295",
            ]
        );
    }
}
