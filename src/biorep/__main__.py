from biorep.cli import main

main()
