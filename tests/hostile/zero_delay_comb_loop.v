// A combinational loop that oscillates forever at one simulation time.
module top_module(input [7:0] a, input [7:0] b, output [7:0] y);
  reg r = 0;
  wire w;
  assign w = ~r;
  always @(w) r = w;
  initial #3 r = 1;   // starts the oscillation after time 0
  assign y = (a ^ b) | {8{1'b0 & w}};
endmodule
