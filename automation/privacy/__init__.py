"""Personal data: export and erasure of one person, retention purges, the audit log.

hashing    keyed hashes (HMAC-SHA256 with SECRET_KEY) of erased addresses, checked at
           send time (delivery.policy) and on contact upsert (contacts.identity)
scrub      remove a person's fields and addresses from JSON documents
export     everything held about one contact, as JSON-able data
forget     erase one contact's personal data, keep anonymous aggregates
retention  purge raw webhook payloads and rendered bodies after their retention days
audit      who did what with `mactl` (apply, export, forget, DLQ replay), and when
"""
