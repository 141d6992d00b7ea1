from jetsynth.cli.main import main

main()
