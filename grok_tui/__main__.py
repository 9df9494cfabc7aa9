from grok_tui.cli.main import main

main()
