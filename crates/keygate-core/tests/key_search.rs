//! `search` of a listing of keys (`list_keys`, `list_keys_page`): the keys whose id, description
//! or hint holds the text in any letter case, with the user and state filters and the cursor.

use keygate_core::{ErrorCode, KeyFilter, KeyPageQuery, KeyPatch, KeyStore, KeyView, NewKey, Options, UserInput};

const DAY: i64 = 86_400_000;
const T0: i64 = 1_800_000_000_000;

fn store() -> KeyStore {
    let s = KeyStore::in_memory(Options { now: Some(T0), ..Options::default() }).unwrap();
    for id in ["billing", "ops"] {
        s.put_user(&UserInput { id: id.into(), rights: vec!["*:*".into()], ..Default::default() }, None).unwrap();
    }
    s
}

fn key(s: &KeyStore, user_id: &str, description: &str, state: Option<&str>) -> KeyView {
    let new = NewKey {
        user_id: user_id.into(),
        description: description.into(),
        expires_at: Some(T0 + 30 * DAY),
        rules: vec![],
        state: state.map(str::to_string),
    };
    s.create_key(&new, None).unwrap().key
}

fn filter(user_id: Option<&str>, state: Option<&str>, search: &str) -> KeyFilter {
    KeyFilter { user_id: user_id.map(str::to_string), state: state.map(str::to_string), search: Some(search.to_string()) }
}

fn ids(keys: Vec<KeyView>) -> Vec<String> {
    keys.into_iter().map(|k| k.id).collect()
}

/// Every key of the filter's listing, `limit` at a time.
fn walk(s: &KeyStore, filter: &KeyFilter, limit: u32) -> Vec<String> {
    let (mut seen, mut after) = (Vec::new(), None);
    for _ in 0..1000 {
        let page = s.list_keys_page(&KeyPageQuery { filter: filter.clone(), limit: Some(limit), after: after.take() }).unwrap();
        assert!(page.keys.len() <= limit as usize);
        assert!(page.next.is_none() || page.keys.len() == limit as usize, "only the last page is short");
        seen.extend(ids(page.keys));
        match page.next {
            Some(next) => after = Some(next),
            None => return seen,
        }
    }
    panic!("paging does not end")
}

/// Twenty-four keys over three instants, two users and three states, with ASCII and non-ASCII
/// descriptions; the listing newest first.
fn seeded() -> (KeyStore, Vec<KeyView>) {
    let s = store();
    let descriptions =
        ["Nightly BILLING export", "billing webhook", "ΟΔΟΣ sync", "οδος backup", "Straße import", "rapport d'ÉTÉ", "", "ops: disk alerts"];
    for i in 0..24_usize {
        s.set_now(Some(T0 + i64::try_from(i / 8).unwrap() * 1000));
        let state = [None, Some("suspended"), None][i % 3];
        let made = key(&s, if i % 2 == 0 { "billing" } else { "ops" }, descriptions[i % descriptions.len()], state);
        if i % 5 == 4 {
            s.set_state(&made.id, "revoked", None).unwrap();
        }
    }
    let whole = s.list_keys(&KeyFilter::default()).unwrap();
    (s, whole)
}

/// What the search should keep, by a fold written apart from the store's.
fn model(whole: &[KeyView], user_id: Option<&str>, state: Option<&str>, search: &str) -> Vec<String> {
    let fold = |text: &str| -> String { text.chars().map(|c| if c == 'ς' { 'σ' } else { c }).flat_map(char::to_lowercase).collect() };
    let needle = fold(search);
    whole
        .iter()
        .filter(|k| user_id.is_none_or(|u| k.user_id == u) && state.is_none_or(|st| k.state == st))
        .filter(|k| [&k.id, &k.description, &k.hint].iter().any(|field| fold(field).contains(&needle)))
        .map(|k| k.id.clone())
        .collect()
}

#[test]
fn search_finds_in_id_description_and_hint_in_any_letter_case_with_the_other_filters() {
    let (s, whole) = seeded();
    let first = &whole[7];
    let id_piece = first.id[4..12].to_ascii_uppercase();
    let hint_piece = first.hint.to_ascii_lowercase();
    let searches = [
        "billing",
        "BILLING",
        "bIlLiNg",
        "οδοσ",
        "ΟΔΟΣ",
        "ς",
        "σ",
        "STRASSE",
        "straße",
        "STRAẞE",
        "été",
        "ÉTÉ",
        "disk",
        "key_",
        "",
        "nothing like it",
        &id_piece,
        &hint_piece,
    ];
    let mut checked = 0;
    for search in searches {
        for user_id in [None, Some("billing"), Some("ops"), Some("nobody")] {
            for state in [None, Some("active"), Some("suspended"), Some("revoked")] {
                let f = filter(user_id, state, search);
                let expected = model(&whole, user_id, state, search);
                assert_eq!(ids(s.list_keys(&f).unwrap()), expected, "list_keys {f:?}");
                for limit in [1, 2, 5, 1000] {
                    assert_eq!(walk(&s, &f, limit), expected, "pages of {limit}, {f:?}");
                }
                checked += usize::from(!expected.is_empty());
            }
        }
    }
    assert!(checked > 100, "too few filters found anything: {checked}");
    // The cases the model could get wrong with the store, spelt out.
    let count = |search: &str| s.list_keys(&filter(None, None, search)).unwrap().len();
    assert_eq!(count("billing"), 6);
    assert_eq!(count("ΟΔΟΣ"), 6, "a final sigma finds a sigma, and the other way");
    assert_eq!(count("οδος"), 6);
    assert_eq!(count("strasse"), 0, "lower case, not full case folding: ß is not ss");
    assert_eq!(count("STRAẞE"), 3, "capital sharp s lowers to ß");
    assert_eq!(count(""), 24);
    assert_eq!(ids(s.list_keys(&filter(None, None, &id_piece)).unwrap()), std::slice::from_ref(&first.id));
    assert!(ids(s.list_keys(&filter(None, None, &hint_piece)).unwrap()).contains(&first.id));
    // A search never spans two fields: the end of a description and the start of the hint.
    let spans = format!("export{}", &first.hint[..2]);
    assert!(s.list_keys(&filter(None, None, &spans)).unwrap().is_empty());
}

#[test]
fn a_searched_listing_pages_on_past_the_cursor_key_deleted_or_no_longer_matching() {
    let (s, whole) = seeded();
    let f = filter(None, None, "BILLING");
    let matching = model(&whole, None, None, "billing");
    assert_eq!(matching.len(), 6);
    let first = s.list_keys_page(&KeyPageQuery { filter: f.clone(), limit: Some(2), after: None }).unwrap();
    assert_eq!(ids(first.keys), matching[..2]);
    // The cursor's own key deleted; one further on renamed out of the search; one key not
    // matching renamed into it; a newer matching key made.
    assert!(s.delete_key(&matching[1], None).unwrap());
    s.update_key(&matching[3], &KeyPatch { description: Some("payroll".into()), ..Default::default() }, None).unwrap();
    let older = whole.iter().rev().find(|k| !matching.contains(&k.id)).unwrap();
    s.update_key(&older.id, &KeyPatch { description: Some("now a Billing key".into()), ..Default::default() }, None).unwrap();
    s.set_now(Some(T0 + DAY));
    let newer = key(&s, "ops", "billing, newest", None);
    let (mut seen, mut cursor) = (Vec::new(), first.next);
    while let Some(at) = cursor.take() {
        let page = s.list_keys_page(&KeyPageQuery { filter: f.clone(), limit: Some(1), after: Some(at) }).unwrap();
        seen.extend(ids(page.keys));
        cursor = page.next;
    }
    let cursor_at = whole.iter().position(|k| k.id == matching[1]).unwrap();
    assert!(whole.iter().position(|k| k.id == older.id).unwrap() > cursor_at, "the renamed key is past the cursor");
    let expected: Vec<String> = whole[cursor_at + 1..]
        .iter()
        .map(|k| k.id.clone())
        .filter(|id| (matching.contains(id) && *id != matching[3]) || *id == older.id)
        .collect();
    assert_eq!(expected.len(), 4);
    assert_eq!(seen, expected);
    assert!(!seen.contains(&newer.id));
}

#[test]
fn a_search_over_a_descriptions_length_is_refused_unquoted() {
    let (s, _) = seeded();
    let longest = "x".repeat(1024);
    assert!(s.list_keys(&filter(None, None, &longest)).unwrap().is_empty());
    let pasted = format!("kg_{}", "Q".repeat(1022));
    for refused in [
        s.list_keys(&filter(None, None, &pasted)).err(),
        s.list_keys_page(&KeyPageQuery { filter: filter(None, None, &pasted), ..Default::default() }).err(),
    ] {
        let error = refused.expect("refused");
        assert_eq!(error.code, ErrorCode::InvalidArgument);
        assert!(error.message.contains("search") && !error.message.contains("QQQQ"), "{}", error.message);
    }
}
