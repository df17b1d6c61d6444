shared::main!(worker, activity_fanout::Fanout<shared::realtime::ApiGatewayTransport>);
