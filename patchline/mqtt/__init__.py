"""MQTT: where verdicts, alarms, statuses and bank versions go (docs/mqtt.md lists every topic).

    topics      topic names and filters, built in one place
    payload     JSON encoding of payloads (numpy values become plain numbers)
    broker      BrokerSettings (URL, credentials, TLS) and paho client construction
    outbox      the queues and drop policy between publish calls and the broker (no network)
    spool       alarms on disk until the broker acknowledges them
    publisher   Publisher: one line's results, wills and statuses, over one connection
    subscriber  Subscriber: the one way patchline listens (alarms command, demo, tests)
"""
