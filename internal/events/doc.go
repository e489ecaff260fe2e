// Package events is Incasso's public event contract and its JetStream
// binding: subjects, CloudEvents attributes, the JSON data, and the codec
// that puts a CloudEvent on a NATS message in binary content mode.
//
// Wire format (CloudEvents NATS binding 1.0.3, binary mode): the data is the
// message payload; every attribute is a "ce-" header whose value is
// percent-encoded like the HTTP binding (space, '"', '%' and bytes outside
// printable ASCII); Content-Type repeats datacontenttype. Nats-Msg-Id is the
// CloudEvent id, which is derived deterministically from the transition, so
// JetStream's duplicate window drops a transition published twice (a crash
// between publishing and saving the snapshot re-publishes the same ids).
//
// The sdk-go nats_jetstream binding cannot set a per-event Nats-Msg-Id,
// hence this small codec; events are still built and validated with
// cloudevents/sdk-go's event package.
package events
