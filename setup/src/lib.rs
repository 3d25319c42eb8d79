//! Will hold `greyd-setup`, the blocklist fetcher in the role of spamd-setup(8); built with its own issue.
