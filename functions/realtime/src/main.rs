shared::main!(events, realtime::FUNCTION, realtime::handle::<shared::realtime::ApiGatewayTransport>);
