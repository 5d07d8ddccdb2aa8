//! A proptest strategy for arbitrary JSON values, shared by the properties of the parsers that
//! read JSON from the network (webhook bodies, tag lists).

use proptest::prelude::*;
use serde_json::{Map, Number, Value};

/// Any JSON value, a few levels deep, with keys that the parsers look for now and then.
pub(crate) fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        any::<String>().prop_map(Value::String),
        "[a-z0-9.:/@_-]{0,24}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let key = prop_oneof![
            prop::sample::select(vec![
                "events",
                "action",
                "target",
                "repository",
                "tag",
                "request",
                "host",
                "image",
                "name",
                "tags",
                "digest",
            ])
            .prop_map(str::to_string),
            any::<String>(),
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key, inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}
