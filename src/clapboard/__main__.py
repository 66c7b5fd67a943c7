from clapboard.cli import main

main()
