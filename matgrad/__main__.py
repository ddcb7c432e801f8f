from matgrad.cli import main

main()
