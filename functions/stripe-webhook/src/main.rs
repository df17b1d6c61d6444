shared::main!(http, stripe_webhook::Function);
