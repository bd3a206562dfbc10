"""The benchmark rig: the bot as a process against the loopback fakes, beside a naive tutorial
bot and a do-nothing bot, measured the same way. ``python -m benchmarks --help``; see README.md."""
