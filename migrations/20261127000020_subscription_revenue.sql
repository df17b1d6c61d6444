-- What a subscription is worth and when its trial ends, as Stripe last said: the price of its
-- items per month (in the currency's smallest unit) for the operators' MRR, and the trial's
-- end for trial extensions.
ALTER TABLE subscriptions ADD COLUMN monthly_amount bigint;
ALTER TABLE subscriptions ADD COLUMN currency text;
ALTER TABLE subscriptions ADD COLUMN trial_end timestamptz;
COMMENT ON COLUMN subscriptions.monthly_amount IS 'sum of the items'' unit_amount x quantity, per month (yearly / 12, ...); NULL if Stripe did not say';
